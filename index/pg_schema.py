"""The PostgreSQL index's schema: its versioned migrations, and where it lives.

The index's tables sit beside the bot's state (bot/state/postgres.py) in one database, or
in a schema of their own (`schema`: the benchmarks keep one per set). Each component keeps
its version in its own row of `schema_versions`, and every newsbot process migrates under
one advisory lock, so replicas starting together never race.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from index.store_base import DatabaseUnavailable, StoreError
from index.usem import USE_DIM

COMPONENT = "index"
# The lock every newsbot process takes while migrating any of its schemas in a database
# (the index's and the bot's state: bot/state/postgres.py takes it too).
MIGRATION_LOCK = 0x6E657773626F74
WRITE_LOCK = 0x6E657773626F75  # one index writer at a time, across processes and machines
CONNECT_TIMEOUT_S = 10
# HNSW candidates kept per search (pgvector's hnsw.ef_search; 1000 at most): at least
# twice the passages asked for.
EF_SEARCH_MIN = 200
# The second model's vectors (`secondary_embeddings.vector`, a halfvec of any width) have an
# HNSW index over those of this width, USE's (migration 4); a model of another width is
# always searched exactly.
SECONDARY_HNSW_DIM = USE_DIM

REBUILD_LOCK = 0x6E657773626F76  # one reindex at a time (held for the whole build)
# A reindex builds the index in a fresh schema (BUILD_PREFIX + n) and then, in one
# transaction, points its home (`schema`, '' for the default search_path) at it here:
# every PgStore opened on that home reads this row (see PgStore.retired).
ACTIVE = """
CREATE TABLE IF NOT EXISTS public.index_active (home TEXT PRIMARY KEY, schema TEXT NOT NULL)
"""
BUILD_PREFIX = "newsbot_index_"
# The index's own tables, dropped from a home a reindex moved the index away from.
INDEX_TABLES = (
    "lexicon, secondary_embeddings, sentence_vectors, embeddings, passages, articles, "
    "index_settings"
)

SCHEMA_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)
"""
# Migration N takes the index's schema from version N-1 to N ({dim}: the model's width,
# fixed when the index is created). `index_settings` is the SQLite store's `meta`.
MIGRATIONS = [
    """
    CREATE TABLE index_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        date TEXT,
        source TEXT NOT NULL DEFAULT '',
        url TEXT,
        lang TEXT,
        summary_only BOOLEAN NOT NULL DEFAULT FALSE,
        content_hash TEXT NOT NULL,
        added_at DOUBLE PRECISION NOT NULL,
        story_id TEXT,
        body_hash TEXT
    );
    CREATE INDEX articles_body ON articles (body_hash);
    CREATE INDEX articles_date ON articles (date);
    CREATE INDEX articles_source ON articles (lower(source));
    CREATE INDEX articles_added ON articles (added_at);
    CREATE INDEX articles_url ON articles (url);
    CREATE TABLE passages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        heading TEXT NOT NULL,
        text TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        text_hash TEXT NOT NULL,
        sentences BYTEA,
        embedding halfvec({dim}) NOT NULL,
        lexemes TSVECTOR NOT NULL,
        length INTEGER NOT NULL,
        UNIQUE (article_id, ordinal)
    );
    CREATE INDEX passages_text_hash ON passages (text_hash);
    CREATE INDEX passages_embedding ON passages USING hnsw (embedding halfvec_ip_ops);
    CREATE INDEX passages_lexemes ON passages USING gin (lexemes);
    CREATE TABLE embeddings (text_hash TEXT PRIMARY KEY, vector BYTEA NOT NULL);
    CREATE TABLE sentence_vectors (
        passage_id BIGINT PRIMARY KEY REFERENCES passages (id) ON DELETE CASCADE,
        vectors BYTEA NOT NULL
    );
    CREATE TABLE secondary_embeddings (
        model_id TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        vector halfvec NOT NULL,
        PRIMARY KEY (model_id, text_hash)
    )
    """,
    # 2: passages may wait for their vector (an ingest that leaves embedding to `newsbot
    # worker` processes); the waiting ones are found through a small partial index.
    """
    ALTER TABLE passages ALTER COLUMN embedding DROP NOT NULL;
    CREATE INDEX passages_unembedded ON passages (id) WHERE embedding IS NULL
    """,
    # 3: how many passages hold each word (BM25's document frequency), kept in step by the
    # writes: a question reads its words' counts in one lookup instead of one GIN scan each.
    """
    CREATE TABLE lexicon (lexeme TEXT PRIMARY KEY, documents BIGINT NOT NULL);
    INSERT INTO lexicon (lexeme, documents)
        SELECT u.lexeme, count(*) FROM passages p, unnest(p.lexemes) AS u GROUP BY u.lexeme
    """,
    # 4: an HNSW index over the second model's vectors, as over the e5 ones. HNSW needs a
    # fixed width and the column has none (each model its own): the index is on the vectors
    # cast to USE's width, partial to the rows of that width (any other width is inserted
    # and searched as before). The model id and "some passage holds this text" stay filters,
    # applied by iterative scans (PgStore.secondary_search).
    f"""
    CREATE INDEX secondary_embeddings_vector ON secondary_embeddings
        USING hnsw ((vector::halfvec({SECONDARY_HNSW_DIM})) halfvec_ip_ops)
        WHERE vector_dims(vector) = {SECONDARY_HNSW_DIM}
    """,
]


def active_schema(cursor: psycopg.Cursor[Any], home: str | None) -> str | None:
    """The schema the index of `home` lives in now: the one the last reindex swapped in,
    else `home` itself (None: the default search_path)."""
    cursor.execute("SELECT schema FROM public.index_active WHERE home = %s", (home or "",))
    row = cursor.fetchone()
    return str(row[0]) if row else home


def migrate(db: psycopg.Connection[Any], dim: int, home: str | None, where: str) -> str | None:
    """Bring the index of `home` to the latest version in one transaction, one process at a
    time (the advisory lock every newsbot schema migrates under); returns the schema it
    lives in (see active_schema)."""
    with db.transaction(), db.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cursor.execute(ACTIVE)
        schema = active_schema(cursor, home)
        if schema:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            cursor.execute(f'SET LOCAL search_path TO "{schema}", public')
        else:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cursor.execute(SCHEMA_VERSIONS)
        cursor.execute("SELECT version FROM schema_versions WHERE component = %s", (COMPONENT,))
        row = cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise StoreError(
                f"the index in {where} was written by a newer newsbot (schema {current}); upgrade"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            script = MIGRATIONS[version - 1].replace("{dim}", str(dim))
            for statement in filter(str.strip, script.split(";")):
                cursor.execute(statement)
            cursor.execute(
                "INSERT INTO schema_versions (component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (COMPONENT, version),
            )
    return schema


def describe(url: str) -> str:
    """user@host:port/database, no password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable URL"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host, port = parts.get("host", "localhost"), parts.get("port", 5432)
    return f"{user}{host}:{port}/{parts.get('dbname', '')}"


def open_pool(
    url: str,
    name: str,
    max_size: int,
    timeout: float = CONNECT_TIMEOUT_S,
    wait: bool = True,
    **options: Any,
) -> ConnectionPool[Any]:
    """A pool of connections to `url`, open and with one connection made (at most
    CONNECT_TIMEOUT_S seconds; `wait` False: made in the background); `timeout` is the
    longest wait for a free connection later; `options` are the pool's others (kwargs of
    each connection, configure, check)."""
    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        timeout=float(timeout),
        name=name,
        open=False,
        **options,
    )
    try:
        pool.open(wait=wait, timeout=float(CONNECT_TIMEOUT_S))
    except BaseException:
        pool.close()
        raise
    return pool


def unavailable(where: str, exc: Exception) -> DatabaseUnavailable:
    """The error a command stops with when the database at `where` cannot be reached."""
    reason = " ".join(str(exc).split())
    return DatabaseUnavailable(
        f"cannot connect to the database at {where} (NEWSBOT_DATABASE_URL): {reason}"
    )


def schema_name(*parts: str) -> str:
    """A PostgreSQL schema name for a bench set: readable and at most 63 bytes."""
    slug = "_".join(parts).lower()
    clean = "".join(c if c.isalnum() else "_" for c in slug)
    return clean[:48] + "_" + hashlib.sha256(slug.encode()).hexdigest()[:8]
