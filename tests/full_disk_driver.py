"""Run inside a mount namespace where MOUNT is a small tmpfs (see test_full_disk.py): copy a
data dir there, fill the disk, and run `newsbot` commands in-process; write what each one
did (exit code, output, any traceback) to a JSON file outside the mount."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from bot.cli import main
from tests.feed_server import serve

FEED = "rss-parser-js/uolNoticias.rss"


def run(argv: list[str]) -> dict[str, object]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc: object = main(argv)
        except BaseException:  # what the test must never see
            rc = "traceback: " + traceback.format_exc()
    return {"argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue()}


def litter(data: Path) -> list[str]:
    names = ["store.new", "store.old"]
    found = [n for n in names if (data / n).exists()]
    return found + [p.name for p in (data / "store").glob(".faiss-*")]


def fill(path: Path) -> None:
    with open(path, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass


def main_driver(source: Path, mount: Path, new_article: Path, question: str, results: Path) -> None:
    data = mount / "data"
    shutil.copytree(source, data)
    os.environ["NEWSBOT_DATA_DIR"] = str(data)
    steps: dict[str, object] = {}
    with serve() as feeds:
        os.environ["NEWSBOT_FEEDS"] = json.dumps([feeds.url(f"/feeds/{FEED}")])
        os.environ["NEWSBOT_ALLOW_PRIVATE_FEEDS"] = "true"
        os.environ["NEWSBOT_FETCH_PAGES"] = "false"
        fill(mount / "filler")
        steps["ingest_full"] = run(["ingest", str(new_article)])
        steps["stats_full"] = run(["stats"])
        steps["ask_full"] = run(["ask", "--json", question])
        steps["reindex_full"] = run(["reindex"])
        steps["poll_full"] = run(["poll"])
        steps["litter_full"] = litter(data)
        (mount / "filler").unlink()
        steps["ingest_after"] = run(["ingest", str(new_article)])
        steps["ask_after"] = run(["ask", "--json", "Which storm flooded Quimper?"])
        # The feed answers 304 to a poll that sends the ETag it saw: the failed poll must
        # not have saved it, or its items would be lost.
        steps["poll_after"] = run(["poll"])
        steps["reindex_after"] = run(["reindex"])
        steps["litter_after"] = litter(data)
    results.write_text(json.dumps(steps), encoding="utf-8")


if __name__ == "__main__":
    source, mount, article, question, results = sys.argv[1:6]
    main_driver(Path(source), Path(mount), Path(article), question, Path(results))
