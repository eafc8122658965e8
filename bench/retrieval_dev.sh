#!/usr/bin/env bash
# Runs `newsbot bench retrieval` on the dev sets named in issue 2 and scores each run with
# ../shared/bench/score.py. Usage: bash bench/retrieval_dev.sh [SET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-../shared/bench}
NEWSBOT=${NEWSBOT:-.venv/bin/newsbot}
PY=${PY:-.venv/bin/python}
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(xquad_en-de xquad_en-en piaf_fr-fr newstest2014_sent-en_to_passage-fr)
mkdir -p bench/out
for name in "${sets[@]}"; do
  "$NEWSBOT" bench retrieval "$BENCH/retrieval/dev/$name" --out "bench/out/$name.run.jsonl"
  "$PY" "$BENCH/score.py" "$BENCH/retrieval/dev/$name" "bench/out/$name.run.jsonl"
done
