"""kill -9 at random moments of `newsbot ingest`, `reindex` and `poll`, then check that
nothing was lost and nothing was left behind.

    python -m bench.crash [--kills N] [--seed S] [--commands ingest reindex poll] [--keep DIR]

Each command first runs once to completion: the reference (its articles with their passage
counts, and how long start-up and work take). Then N times: a fresh data dir, the real CLI
in a subprocess, SIGKILL at a random moment, the invariants checked in-process, and the
same command run to completion, which must give the reference exactly.

Start-up (imports, model load) is much of a run's time and touches nothing on disk, so most
kills land while the command is busy: the process is watched until it opens a file of its
data dir (a reindex: until its store.new appears) and killed a random time after that,
uniform over 1.1x as long as the reference stayed busy, so a few land after the end (a
reindex: after its swap); START_UP_SHARE of the kills land in start-up instead. Exits 1
when any invariant failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot import cli
from bot.config import Settings
from bot.engine import Engine
from bot.state import SqliteState
from index.corpus import open_store, store_dir
from index.embedding import Embedder, get_embedder
from index.faiss_cache import CacheError, FaissCache
from index.store import DB_NAME, Store

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "bench"
ARTICLE_SOURCES = (SHARED / "articles", SHARED / "newsqa-dev" / "articles")
ARTICLES_PER_SOURCE = 20  # 40 articles: two of the store's 32-article batches
ARTICLES_IN_FOLDER = 25  # reindex: the rest exist only in the store
FEED_SUFFIXES = {".rss", ".atom", ".xml"}
# The two heaviest feed files (17k words of full text; 69 items) would make each poll run
# twice as long; the other 14 (one malformed, one not well-formed) hold 136 items.
FEEDS_LEFT_OUT = {"feedburner.atom", "rss-1.rss"}
QUESTION = "who denied signing an accord?"
START_UP_SHARE = 0.15
PAST_THE_END = 1.1
WATCH_S = 0.01
COMMAND_TIMEOUT_S = 600.0
COMMANDS = ("ingest", "reindex", "poll")

Counts = dict[str, int]  # passages per article id


@dataclass
class Scenario:
    """One command under test: how to prepare its data dir, its CLI arguments and
    environment, and whether the articles after a kill must be exactly the reference's
    (reindex: nothing may be lost) or may be a subset (ingest, poll: still in progress)."""

    name: str
    prepare: Callable[[Path], None]
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    exact: bool = False
    # While the process does the work kills should land in (default: from the moment it
    # opens a file of its data dir; a reindex: while store.new exists).
    busy: Callable[[int, Path], bool] = field(default=lambda pid, data: holds_data_files(pid, data))


@dataclass
class Reference:
    counts: Counts
    start_up_s: float
    busy_s: float


@dataclass
class Landing:
    """Where one kill landed: the phase and what the data dir looked like right after."""

    phase: str  # start-up, working, finished
    at_s: float
    store_new: bool = False
    swapped: bool = False
    faiss_behind: bool = False
    torn_log: bool = False
    faiss_temp: bool = False
    articles: int = 0
    of: int = 0  # the reference's articles
    repaired: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    scenario: str
    number: int
    landing: Landing
    failures: list[str]
    seconds: float


# --- preparing data dirs ---------------------------------------------------------------------


def source_articles() -> list[Path]:
    """The 40 article files every scenario uses (French and English news)."""
    files: list[Path] = []
    for folder in ARTICLE_SOURCES:
        found = sorted(folder.glob("*.txt"))
        if len(found) < ARTICLES_PER_SOURCE:
            raise SystemExit(f"bench.crash needs {ARTICLES_PER_SOURCE} .txt files in {folder}")
        files += found[:ARTICLES_PER_SOURCE]
    return files


def copy_files(files: Sequence[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


def build_indexed_template(template: Path, embedder: Embedder, work: Path) -> None:
    """A data dir indexed with 40 articles, 15 of them ingested from outside articles/
    (they exist only in the store, and a reindex must keep them)."""
    files = source_articles()
    copy_files(files[:ARTICLES_IN_FOLDER], template / "articles")
    outside = copy_files(files[ARTICLES_IN_FOLDER:], work / "outside")
    engine = Engine(Settings(data_dir=template), embedder=embedder)
    try:
        engine.ingest([template / "articles"])
        engine.ingest([outside])
    finally:
        engine.close()
    shutil.rmtree(outside)


def empty_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)


def copy_data_dir(template: Path, data_dir: Path) -> None:
    shutil.copytree(template, data_dir)


def feed_urls(base_url: str) -> list[str]:
    from tests.feed_server import BENCH_FEEDS

    files = sorted(
        p
        for p in BENCH_FEEDS.rglob("*")
        if p.suffix in FEED_SUFFIXES and p.name not in FEEDS_LEFT_OUT
    )
    return [f"{base_url}/feeds/{p.relative_to(BENCH_FEEDS)}" for p in files]


def scenarios(work: Path, embedder: Embedder, feeds_base_url: str | None) -> list[Scenario]:
    inputs = copy_files(source_articles(), work / "input")
    template = work / "indexed"
    found = [Scenario("ingest", empty_data_dir, ["ingest", str(inputs)])]
    if not template.exists():
        build_indexed_template(template, embedder, work)
    found.append(
        Scenario(
            "reindex",
            lambda data: copy_data_dir(template, data),
            ["reindex"],
            exact=True,
            busy=lambda pid, data: (data / "store.new").exists(),
        )
    )
    if feeds_base_url is not None:
        feeds = json.dumps(feed_urls(feeds_base_url))
        env = {
            "NEWSBOT_FEEDS": feeds,
            "NEWSBOT_ALLOW_PRIVATE_FEEDS": "true",
            # The items' links point at real sites, which are out of reach here.
            "NEWSBOT_FETCH_PAGES": "false",
            "NEWSBOT_FETCH_TIMEOUT": "5",
        }
        found.append(Scenario("poll", empty_data_dir, ["poll"], env))
    return found


# --- running and killing the CLI -------------------------------------------------------------


def command_env(data_dir: Path, scenario: Scenario) -> dict[str, str]:
    """The environment of the real CLI: no NEWSBOT_* of the caller's but the model cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_")}
    env["NEWSBOT_CACHE_DIR"] = str(Settings().cache_dir)
    env["NEWSBOT_DATA_DIR"] = str(data_dir)
    return env | scenario.env


def holds_data_files(pid: int, data_dir: Path) -> bool:
    """Whether the process holds a file of the data dir open: start-up is over."""
    prefix = str(data_dir.resolve()) + os.sep
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                return True
    return False


@dataclass
class KillPlan:
    """Kill `delay_s` after the start (start-up) or after the process became busy."""

    in_start_up: bool
    delay_s: float


def plan_kill(rng: random.Random, reference: Reference) -> KillPlan:
    if rng.random() < START_UP_SHARE:
        return KillPlan(True, rng.uniform(0.0, reference.start_up_s))
    return KillPlan(False, rng.uniform(0.0, PAST_THE_END * reference.busy_s))


@dataclass
class Run:
    returncode: int | None  # None: killed
    seconds: float
    working_from_s: float | None  # start-up over: a file of the data dir opened
    busy_from_s: float | None
    busy_until_s: float | None
    killed_at_s: float | None


def run_cli(data_dir: Path, scenario: Scenario, log_path: Path, plan: KillPlan | None) -> Run:
    """Run the real `newsbot` command in a subprocess; SIGKILL it as planned (None: let it
    finish)."""
    argv = [sys.executable, "-m", "bot.cli", *scenario.args]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, env=command_env(data_dir, scenario), stdout=log, stderr=log
        )
    working_from: float | None = None
    busy_from: float | None = None
    busy_until: float | None = None
    kill_at = plan.delay_s if plan is not None and plan.in_start_up else None
    try:
        while process.poll() is None:
            now = time.monotonic() - started
            if now > COMMAND_TIMEOUT_S:
                raise RuntimeError(f"{scenario.name} ran over {COMMAND_TIMEOUT_S:.0f} s")
            if working_from is None and holds_data_files(process.pid, data_dir):
                working_from = now
            if scenario.busy(process.pid, data_dir):
                busy_until = now
                if busy_from is None:
                    busy_from = now
                    if plan is not None and not plan.in_start_up:
                        kill_at = now + plan.delay_s
            if kill_at is not None and now >= kill_at:
                process.kill()
                process.wait()
                return Run(None, time.monotonic() - started, working_from, busy_from, None, now)
            time.sleep(WATCH_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    seconds = time.monotonic() - started
    return Run(process.returncode, seconds, working_from, busy_from, busy_until, None)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ is exactly `values` (a command's whole environment) inside the block."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(data_dir: Path, scenario: Scenario, args: list[str]) -> tuple[int, str, str]:
    """`newsbot ARGS` through bot.cli.main in this process (the model is already loaded):
    exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    env = command_env(data_dir, scenario)
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


# --- what the data dir holds -----------------------------------------------------------------


def passage_counts(store: Store) -> Counts:
    bounds = store.passage_bounds()
    return {article_id: len(bounds.get(article_id, [])) for article_id in store.article_ids()}


def leftovers(data_dir: Path) -> list[str]:
    """What a finished or recovered command must not leave: a half-built or retired store,
    a FAISS temp file."""
    found = [name for name in ("store.new", "store.old") if (data_dir / name).exists()]
    return found + [p.name for p in store_dir(data_dir).glob(".faiss-*")]


def db_inode(data_dir: Path) -> int | None:
    """The store's database file: a reindex's swap replaces it."""
    try:
        return (store_dir(data_dir) / DB_NAME).stat().st_ino
    except FileNotFoundError:
        return None


def faiss_on_disk(data_dir: Path) -> tuple[bool, bool]:
    """Read without opening the store: whether the FAISS files (snapshot and log) reflect
    an older SQLite generation than the database's (a kill between the SQLite commit and
    the FAISS write), and whether the log ends in a torn record (a kill mid-append)."""
    db = store_dir(data_dir) / DB_NAME
    if not db.exists():
        return False, False
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    generation = int(meta.get("generation") or 0)
    cache = FaissCache(store_dir(data_dir), int(meta.get("dim") or 0))
    try:
        loaded = cache.load()
    except (FileNotFoundError, CacheError):
        return generation > 0, False
    log_size = cache.log.stat().st_size if cache.log.exists() else 0
    return loaded.generation != generation, loaded.log_offset < log_size


class _Recorder(logging.Handler):
    """Collects the warnings `index` logs while a store is opened: what it repaired."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def recording_repairs() -> Iterator[list[str]]:
    recorder = _Recorder()
    logger = logging.getLogger("index")
    logger.addHandler(recorder)
    try:
        yield recorder.messages
    finally:
        logger.removeHandler(recorder)


def repair_kind(message: str) -> str:
    for words, kind in (
        ("store.new", "store.new removed"),
        ("interrupted reindex", "swap undone"),
        ("FAISS cache", "FAISS rebuilt"),
    ):
        if words in message:
            return kind
    return message[:60]


# --- invariants ------------------------------------------------------------------------------


def compare(counts: Counts, reference: Counts, exact: bool) -> list[str]:
    """Articles that should not be there, that lack passages, or (exact) that are missing."""
    failures = []
    extra = sorted(set(counts) - set(reference))
    if extra:
        failures.append(f"{len(extra)} articles not in the reference: {extra[:3]}")
    partial = sorted(a for a in counts if a in reference and counts[a] != reference[a])
    if partial:
        shown = ", ".join(f"{a} {counts[a]}/{reference[a]}" for a in partial[:3])
        failures.append(f"{len(partial)} articles without all their passages: {shown}")
    missing = sorted(set(reference) - set(counts))
    if exact and missing:
        failures.append(f"{len(missing)} of {len(reference)} articles lost: {missing[:3]}")
    return failures


def check_store(data_dir: Path, embedder: Embedder) -> tuple[list[str], Counts, list[str]]:
    """Open the store as the next command would: it must open, leave nothing behind, and
    hold as many FAISS vectors as SQLite passages. Returns failures, passage counts and
    what opening repaired."""
    with recording_repairs() as repairs:
        try:
            store = open_store(data_dir, embedder)
        except Exception as exc:
            return [f"the store does not open: {exc!r}"], {}, list(repairs)
    try:
        failures = []
        left = leftovers(data_dir)
        if left:
            failures.append(f"left behind after opening: {', '.join(left)}")
        passages = store.stats().passages
        if store.index.ntotal != passages:
            failures.append(f"FAISS holds {store.index.ntotal} vectors, SQLite {passages}")
        if store.retired:
            failures.append("the store opened is marked retired: every write to it will fail")
        return failures, passage_counts(store), list(repairs)
    finally:
        store.close()


def check_ask(data_dir: Path, scenario: Scenario, empty: bool) -> list[str]:
    """`newsbot ask --json` answers (or, on an empty index, says so in one sentence)."""
    try:
        code, out, err = run_in_process(data_dir, scenario, ["ask", "--json", QUESTION])
    except Exception as exc:
        return [f"ask raised {exc!r}"]
    if empty:
        return [] if code == 2 and "empty" in err else [f"ask on an empty index: {code} {err}"]
    if code != 0:
        return [f"ask exited {code}: {err.strip()[:200]}"]
    try:
        answer = json.loads(out.splitlines()[0])
    except (IndexError, ValueError):
        return [f"ask printed no JSON answer: {out[:200]!r}"]
    return [] if answer.get("question") == QUESTION else [f"ask answered {answer!r:.200}"]


def check_state(data_dir: Path) -> list[str]:
    """The bot's state DB (feeds, ETags) opens and reads."""
    path = Settings(data_dir=data_dir).state_path
    if not path.exists():
        return []
    try:
        state = SqliteState(path)
        try:
            state.feeds()
        finally:
            state.close()
    except Exception as exc:
        return [f"the state DB does not open: {exc!r}"]
    return []


def check_after_kill(
    data_dir: Path, scenario: Scenario, reference: Counts, embedder: Embedder
) -> tuple[list[str], Counts, list[str]]:
    failures, counts, repairs = check_store(data_dir, embedder)
    if failures and not counts:
        return failures, counts, repairs
    failures += compare(counts, reference, scenario.exact)
    failures += check_ask(data_dir, scenario, empty=not counts)
    failures += check_state(data_dir)
    return failures, counts, repairs


def check_completion(
    data_dir: Path, scenario: Scenario, reference: Counts, embedder: Embedder
) -> list[str]:
    """The same command run to completion after the kill gives exactly the reference."""
    try:
        code, _, err = run_in_process(data_dir, scenario, scenario.args)
    except Exception as exc:
        return [f"{scenario.name} after the kill raised {exc!r}"]
    failures = [] if code == 0 else [f"{scenario.name} after the kill exited {code}: {err[:200]}"]
    found, counts, _ = check_store(data_dir, embedder)
    failures += [f"after a full {scenario.name}: {f}" for f in found]
    failures += [
        f"after a full {scenario.name}: {f}" for f in compare(counts, reference, exact=True)
    ]
    return failures + check_state(data_dir)


# --- one scenario ----------------------------------------------------------------------------


def measure_reference(scenario: Scenario, work: Path, embedder: Embedder) -> Reference:
    """One uninterrupted run: its articles and passage counts, start-up and working time."""
    data_dir = work / f"{scenario.name}-reference"
    scenario.prepare(data_dir)
    before = None
    if (store_dir(data_dir) / DB_NAME).exists():
        before = check_store(data_dir, embedder)[1]
    log_path = work / f"{scenario.name}-reference.log"
    run = run_cli(data_dir, scenario, log_path, plan=None)
    if run.returncode != 0:
        raise RuntimeError(f"the reference {scenario.name} failed: {log_path.read_text()[-2000:]}")
    if run.working_from_s is None or run.busy_from_s is None or run.busy_until_s is None:
        raise RuntimeError(f"the reference {scenario.name} was never seen at work")
    failures, counts, _ = check_store(data_dir, embedder)
    if failures or not counts:
        raise RuntimeError(f"the reference {scenario.name} is not usable: {failures or 'empty'}")
    if before is not None and before != counts:
        raise RuntimeError(f"an uninterrupted {scenario.name} changed the articles' passages")
    shutil.rmtree(data_dir)
    return Reference(counts, run.working_from_s, run.busy_until_s - run.busy_from_s)


def kill_once(
    scenario: Scenario,
    number: int,
    plan: KillPlan,
    reference: Reference,
    work: Path,
    embedder: Embedder,
    keep: Path | None,
) -> Outcome:
    started = time.monotonic()
    data_dir = work / f"{scenario.name}-{number}" / "data"
    scenario.prepare(data_dir)
    before = db_inode(data_dir)
    log_path = data_dir.parent / "command.log"
    run = run_cli(data_dir, scenario, log_path, plan)
    failures: list[str] = []
    if run.killed_at_s is None:
        phase = "finished"
        if run.returncode != 0:
            failures.append(f"exited {run.returncode}: {log_path.read_text()[-300:]}")
    else:
        phase = "working" if run.working_from_s is not None else "start-up"
    behind, torn = faiss_on_disk(data_dir)
    landing = Landing(
        phase=phase,
        at_s=run.killed_at_s if run.killed_at_s is not None else run.seconds,
        store_new=(data_dir / "store.new").exists(),
        swapped=before is not None and db_inode(data_dir) != before,
        faiss_behind=behind,
        torn_log=torn,
        faiss_temp=any(store_dir(data_dir).glob(".faiss-*")),
    )
    found, counts, landing.repaired = check_after_kill(
        data_dir, scenario, reference.counts, embedder
    )
    failures += found
    landing.articles, landing.of = len(counts), len(reference.counts)
    failures += check_completion(data_dir, scenario, reference.counts, embedder)
    if failures and keep is not None:
        shutil.copytree(data_dir.parent, keep / f"{scenario.name}-{number}", dirs_exist_ok=True)
    shutil.rmtree(data_dir.parent, ignore_errors=True)
    return Outcome(scenario.name, number, landing, failures, time.monotonic() - started)


def run_scenario(
    scenario: Scenario,
    kills: int,
    seed: int,
    work: Path,
    embedder: Embedder,
    keep: Path | None = None,
    report: Callable[[str], None] = print,
) -> tuple[Reference, list[Outcome]]:
    reference = measure_reference(scenario, work, embedder)
    report(
        f"{scenario.name}: reference {len(reference.counts)} articles, "
        f"{sum(reference.counts.values())} passages, start-up {reference.start_up_s:.1f} s, "
        f"busy {reference.busy_s:.1f} s"
    )
    rng = random.Random(f"{seed}-{scenario.name}")
    outcomes = []
    for number in range(1, kills + 1):
        outcome = kill_once(
            scenario, number, plan_kill(rng, reference), reference, work, embedder, keep
        )
        outcomes.append(outcome)
        landing = outcome.landing
        repairs = ", ".join(dict.fromkeys(repair_kind(m) for m in landing.repaired))
        report(
            f"  {scenario.name} #{number}: killed {landing.phase} at {landing.at_s:.1f} s, "
            f"{landing.articles} articles, repaired: {repairs or '-'}; "
            + ("ok" if not outcome.failures else "FAILED: " + " | ".join(outcome.failures))
        )
    return reference, outcomes


def run_crash_bench(
    kills: int,
    seed: int,
    commands: Sequence[str] = COMMANDS,
    keep: Path | None = None,
    report: Callable[[str], None] = print,
) -> list[Outcome]:
    """Every scenario of `commands`, `kills` times each; every outcome (with its failures)."""
    from tests.feed_server import serve

    settings = Settings()
    embedder = get_embedder(settings.model, settings.cache_dir, batch_size=settings.batch_size)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="newsbot-crash-") as tmp, serve() as server:
        work = Path(tmp)
        base_url = server.base_url if "poll" in commands else None
        for scenario in scenarios(work, embedder, base_url):
            if scenario.name in commands:
                outcomes += run_scenario(scenario, kills, seed, work, embedder, keep, report)[1]
    return outcomes


# --- the tables ------------------------------------------------------------------------------


def summary_table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| command | kills | killed while: start-up / working / finished | invariant failures "
        "| mean s per run |",
        "|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(o.scenario for o in outcomes):
        mine = [o for o in outcomes if o.scenario == name]
        phases = [sum(o.landing.phase == p for o in mine) for p in ("start-up", "working")]
        phases.append(sum(o.landing.phase == "finished" for o in mine))
        failed = sum(bool(o.failures) for o in mine)
        mean = sum(o.seconds for o in mine) / len(mine)
        lines.append(
            f"| {name} | {len(mine)} | {' / '.join(map(str, phases))} | {failed} | {mean:.1f} |"
        )
    return "\n".join(lines)


def landing_table(outcomes: Sequence[Outcome]) -> str:
    """Where the kills landed: what was on disk right after, and what opening repaired."""
    lines = [
        "| command | store.new at kill | store swapped at kill | FAISS behind SQLite "
        "| torn faiss.log record | .faiss-* temp | articles at kill: none / some / all "
        "| repaired at open |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(o.scenario for o in outcomes):
        mine = [o.landing for o in outcomes if o.scenario == name]
        repairs: dict[str, int] = {}
        for landing in mine:
            for kind in dict.fromkeys(repair_kind(m) for m in landing.repaired):
                repairs[kind] = repairs.get(kind, 0) + 1
        held = [0, 0, 0]
        for landing in mine:
            held[0 if not landing.articles else 2 if landing.articles == landing.of else 1] += 1
        flags = [
            sum(getattr(x, flag) for x in mine)
            for flag in ("store_new", "swapped", "faiss_behind", "torn_log", "faiss_temp")
        ]
        lines.append(
            f"| {name} | {' | '.join(map(str, flags))} | {' / '.join(map(str, held))} "
            f"| {', '.join(f'{k} {n}' for k, n in repairs.items()) or '-'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__)
    parser.add_argument("--kills", type=int, default=20, help="kills per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--keep", type=Path, help="copy the data dirs of failed runs here")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setLevel(logging.ERROR)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    outcomes = run_crash_bench(
        args.kills, args.seed, args.commands, args.keep, lambda line: print(line, flush=True)
    )
    print()
    print(summary_table(outcomes))
    print()
    print(landing_table(outcomes))
    failed = [o for o in outcomes if o.failures]
    for outcome in failed:
        print(f"\n{outcome.scenario} #{outcome.number} ({outcome.landing.phase}):")
        for failure in outcome.failures:
            print(f"  - {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
