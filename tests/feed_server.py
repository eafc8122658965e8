"""A real HTTP server on 127.0.0.1 for feed tests: the bench feed files (with ETag and
Last-Modified, answering 304), pages added by the tests, and endpoints that misbehave."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH_FEEDS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "feeds"
FEED_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    # a common misconfiguration: the header claims UTF-8 whatever the file declares
    ".xml": "text/xml; charset=utf-8",
}
HTML = "text/html; charset=utf-8"
SLOW_S = 1.5
HUGE_BYTES = 50_000_000
CHUNK = b"x" * 65_536


class FeedServer:
    """What the tests see: the base URL, the pages to serve, and what was asked for."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[str] = []
        self.user_agents: list[str] = []
        self.huge_sent = 0
        self.huge_done = threading.Event()

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(self, path: str, body: str | bytes, content_type: str = HTML, status: int = 200) -> str:
        """Serve `body` at `path`; return its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.pages[path] = (status, content_type, data)
        return self.url(path)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append(self.path)
        state.user_agents.append(self.headers.get("User-Agent", ""))
        path = self.path.split("?")[0]
        if path.startswith("/feeds/"):
            self._feed_file(path.removeprefix("/feeds/"))
        elif path in state.pages:
            status, content_type, body = state.pages[path]
            self._send(status, body, content_type)
        elif path == "/slow":
            time.sleep(SLOW_S)
            self._send(200, b"<rss/>", "application/rss+xml")
        elif path == "/drip":
            self._drip()
        elif path in ("/huge", "/huge-declared"):
            self._huge(declared=path == "/huge-declared")
        elif path == "/loop":
            self._redirect("/loop")
        elif path.startswith("/hop/"):
            left = int(path.removeprefix("/hop/"))
            if left:
                self._redirect(f"/hop/{left - 1}")
            else:
                self._send(200, b"arrived", "text/plain")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _feed_file(self, relative: str) -> None:
        file = (BENCH_FEEDS / relative).resolve()
        if not file.is_relative_to(BENCH_FEEDS.resolve()) or not file.is_file():
            self._send(404, b"not found", "text/plain")
            return
        body = file.read_bytes()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        mtime = int(file.stat().st_mtime)
        if self.headers.get("If-None-Match") == etag or _not_modified_since(
            self.headers.get("If-Modified-Since"), mtime
        ):
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        content_type = FEED_TYPES.get(file.suffix, "application/octet-stream")
        last_modified = formatdate(mtime, usegmt=True)
        self._send(200, body, content_type, ETag=etag, Last_Modified=last_modified)

    def _drip(self) -> None:
        """A byte every 0.1 s: no single read times out, only the total deadline can."""
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        try:
            for _ in range(int(SLOW_S / 0.1)):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def _huge(self, declared: bool) -> None:
        """Streams HUGE_BYTES until the client hangs up; records how much went out."""
        state = self.server.state
        state.huge_sent = 0
        state.huge_done.clear()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        if declared:
            self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        try:
            while state.huge_sent < HUGE_BYTES:
                self.wfile.write(CHUNK)
                state.huge_sent += len(CHUNK)
        except OSError:
            pass
        finally:
            state.huge_done.set()


def _not_modified_since(header: str | None, mtime: int) -> bool:
    if not header:
        return False
    try:
        return parsedate_to_datetime(header).timestamp() >= mtime
    except (TypeError, ValueError):
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FeedServer


@contextmanager
def serve() -> Iterator[FeedServer]:
    """Run the server on a free port of 127.0.0.1 for the duration of the block."""
    if not BENCH_FEEDS.is_dir():
        raise RuntimeError(
            f"feed files not found at {BENCH_FEEDS}: the tests read ../shared/bench/feeds "
            "beside the repository"
        )
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.state = FeedServer(f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
