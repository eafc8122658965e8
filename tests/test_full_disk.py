"""A full disk: one clear sentence, the previous index keeps answering, nothing is left
behind. The disk is a real tmpfs filled to the last byte, mounted in a private mount
namespace (`unshare`), so no privileges are needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import REPO

QUESTION = "who denied signing an accord?"


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt || exit 1"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -r -m (user namespaces)")
def test_a_full_disk_gives_one_sentence_and_the_old_index_serves(
    settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEWSBOT_CACHE_DIR", str(settings.cache_dir))
    assert main(["ingest", str(settings.articles_dir)]) == 0
    new_article = tmp_path / "storm.json"
    new_article.write_text(
        json.dumps(
            {
                "title": "Storm Ciaran floods Quimper",
                "text": "Storm Ciaran flooded the centre of Quimper on Thursday. The river "
                "Odet rose by two metres and three hundred homes were evacuated.",
                "source": "Ouest Wire",
                "date": "2023-11-02",
            }
        ),
        encoding="utf-8",
    )
    mount = tmp_path / "disk"
    mount.mkdir()
    results = tmp_path / "results.json"
    script = (
        f"mount -t tmpfs -o size=24m tmpfs {mount} && exec {sys.executable} "
        f"-m tests.full_disk_driver {settings.data_dir} {mount} {new_article} "
        f"'{QUESTION}' {results}"
    )
    done = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads(results.read_text(encoding="utf-8"))
    for name, step in steps.items():
        if isinstance(step, dict):
            assert not str(step["rc"]).startswith("traceback"), (name, step["rc"])
            assert "Traceback" not in step["err"], (name, step["err"])
    # Writes fail with one sentence naming the full disk.
    for name in ("ingest_full", "reindex_full"):
        step = steps[name]
        assert step["rc"] != 0, name
        lines = [line for line in step["err"].splitlines() if line.startswith("newsbot:")]
        assert len(lines) == 1 and "full" in lines[0], (name, step["err"])
    # The previous index still answers and reports itself.
    assert steps["stats_full"]["rc"] == 0 and "articles" in steps["stats_full"]["out"]
    asked = json.loads(steps["ask_full"]["out"].splitlines()[-1])
    assert asked["answered"] and "Peskov" in asked["citations"][0]["quote"]
    # Nothing left behind, then everything works again once there is space.
    assert steps["litter_full"] == [] and steps["litter_after"] == []
    assert steps["ingest_after"]["rc"] == 0 and "1 added" in steps["ingest_after"]["out"]
    after = json.loads(steps["ask_after"]["out"].splitlines()[-1])
    assert after["answered"] and "Quimper" in after["citations"][0]["quote"]
    assert steps["reindex_after"]["rc"] == 0
    # A poll whose items cannot be indexed fetches them again once there is space.
    assert steps["poll_full"]["rc"] == 1 and "full" in steps["poll_full"]["err"]
    assert steps["poll_after"]["rc"] == 0 and " 0 articles added" not in steps["poll_after"]["out"]
