"""The PostgreSQL the tests run on: version 18, pgvector usable, not run as root."""

from __future__ import annotations

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from tests.postgres import PostgresServer


def test_the_server_is_postgresql_18_with_pgvector(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as db:
        assert db.info.server_version // 10000 == 18
        db.execute("CREATE EXTENSION vector")
        register_vector(db)
        db.execute("CREATE TABLE v (id int PRIMARY KEY, embedding vector(3))")
        db.execute("CREATE INDEX ON v USING hnsw (embedding vector_ip_ops)")
        rows = [(1, np.array([1, 0, 0])), (2, np.array([0.6, 0.8, 0])), (3, np.array([0, 0, 1]))]
        with db.cursor() as cursor:
            cursor.executemany("INSERT INTO v VALUES (%s, %s)", rows)
        nearest = db.execute(
            "SELECT id FROM v ORDER BY embedding <#> %s LIMIT 2", (np.array([0.5, 0.9, 0.1]),)
        ).fetchall()
        assert nearest == [(2,), (1,)]
    data_owner = postgres.data_dir.stat().st_uid
    assert data_owner != 0  # PostgreSQL refuses root: under root it runs as its own user
