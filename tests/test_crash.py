"""kill -9 in the middle of the real `newsbot ingest`, `reindex` and `poll`: nothing lost,
nothing left behind (bench/crash.py with 2 kills per command; the benchmark runs 20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import COMMANDS, run_crash_bench

# With this seed both kills of every command are planned 11-77 % into its working phase
# (none in start-up, none past the end), so each run interrupts real work.
SEED = 20


@pytest.mark.slow
def test_a_killed_command_loses_nothing_and_leaves_nothing_behind(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSBOT_CACHE_DIR", str(cache_dir))
    outcomes = run_crash_bench(kills=2, seed=SEED, report=lambda line: None)

    assert [o.scenario for o in outcomes] == [c for c in COMMANDS for _ in range(2)]
    failures = [
        f"{o.scenario} #{o.number} (killed {o.landing.phase} at {o.landing.at_s:.1f} s): {f}"
        for o in outcomes
        for f in o.failures
    ]
    assert not failures, "\n".join(failures)
    for command in COMMANDS:
        phases = [o.landing.phase for o in outcomes if o.scenario == command]
        assert "working" in phases, f"no kill of {command} interrupted its work: {phases}"
