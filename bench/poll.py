"""How long one polling round takes: every feed file of ../shared/bench/feeds served from
127.0.0.1, polled into a fresh data dir by `bot.poll.poll_feeds`, then polled again.

    python -m bench.poll

Pages are not fetched (their links point at the real sites, unreachable here), so the
round measures fetching, parsing, chunking and embedding the feeds' own text.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bot.config import Settings
from bot.engine import Engine
from bot.poll import poll_feeds
from bot.state import SqliteState
from index.embedding import default_cache_dir, get_embedder
from index.feeds import FeedSource

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "feeds"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log on the console."""


def main() -> None:
    handler = functools.partial(_Quiet, directory=str(FEEDS))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    files = sorted(p for p in FEEDS.rglob("*") if p.suffix in {".rss", ".atom", ".xml"})
    feeds = [FeedSource(url=f"{base}/{p.relative_to(FEEDS)}") for p in files]
    embedder = get_embedder("bundled", default_cache_dir())
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            cache_dir=default_cache_dir(),
            feeds=feeds,
            allow_private_feeds=True,
            fetch_pages=False,
            _env_file=None,
        )
        engine = Engine(settings, embedder=embedder)
        state = SqliteState(Path(tmp) / "state.sqlite3")
        rounds = []
        for _ in range(2):
            started = time.perf_counter()
            report = poll_feeds(engine, state, settings)
            rounds.append((time.perf_counter() - started, report))
        engine.close()
    server.shutdown()
    print("| round | feeds | failed | new items | passages embedded | time |")
    print("|---|---|---|---|---|---|")
    for n, (seconds, report) in enumerate(rounds, start=1):
        print(
            f"| {n} | {report.feeds} | {len(report.failed)} | {report.items} | "
            f"{report.ingest.embedded} | {seconds:.1f} s |"
        )


if __name__ == "__main__":
    main()
