"""The PostgreSQL the tests run on: version 18, pgvector usable, not run as root, and a
streaming read replica for the tests that need one."""

from __future__ import annotations

import time

import numpy as np
import psycopg
import pytest
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


def test_a_replica_streams_the_primarys_vectors_and_refuses_writes(
    postgres: PostgresServer, postgres_replica: PostgresServer
) -> None:
    url = postgres.new_database()
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url) as primary:  # one transaction: the replica sees all or nothing
        primary.execute("CREATE EXTENSION vector")
        primary.execute("CREATE TABLE v (id int PRIMARY KEY, embedding vector(2))")
        primary.execute("INSERT INTO v VALUES (1, '[1,0]'), (2, '[0,1]')")
    deadline = time.monotonic() + 30
    while True:  # the database itself reaches the replica by streaming, a moment later
        try:
            with psycopg.connect(postgres_replica.url(database), autocommit=True) as replica:
                nearest = replica.execute(
                    "SELECT id FROM v ORDER BY embedding <#> '[0.2,0.9]' LIMIT 1"
                ).fetchone()
                assert nearest == (2,)
                assert replica.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
                with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                    replica.execute("INSERT INTO v VALUES (3, '[1,1]')")
                return
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
