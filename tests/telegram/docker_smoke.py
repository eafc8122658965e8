"""Smoke-test a built image against the fake Bot API (needs Docker; not part of `make test`).

    docker build -t newsbot .
    .venv/bin/python -m tests.telegram.docker_smoke [image]

Starts the image with host networking, its token and Bot API URL pointing at a fake Bot API
server on 127.0.0.1, and a fresh volume for /data. The container must index the seed
article on its own, answer an English and a French question with the Peskov quote, report
healthy through its HEALTHCHECK, and stop cleanly on `docker stop`. Exits 1 otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from tests.telegram.fake_bot_api import FakeBotAPI

QUESTIONS = ("who denied signing an accord?", "Qui a nié la signature d'un accord ?")
QUOTE = "Dmitri Peskov"


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def health(name: str) -> dict[str, object]:
    state = json.loads(docker("inspect", "--format", "{{json .State.Health}}", name))
    return state or {"Status": "none", "Log": []}


def main(image: str = "newsbot") -> int:
    name = f"newsbot-smoke-{uuid.uuid4().hex[:8]}"
    failures: list[str] = []
    with FakeBotAPI() as fake:
        docker(
            "run", "-d", "--name", name, "--network", "host",
            "-e", f"NEWSBOT_TELEGRAM_TOKEN={fake.token}",
            "-e", f"NEWSBOT_TELEGRAM_API_URL={fake.base_url}",
            "-v", f"{name}:/data", image,
        )  # fmt: skip
        try:
            started = time.monotonic()
            fake.wait_for(lambda: fake.calls("getUpdates"), 300, "the bot's first getUpdates")
            print(f"polling {time.monotonic() - started:.0f} s after start")
            ann = fake.user("Ann")
            chat = fake.private_chat(ann)
            for n, question in enumerate(QUESTIONS, start=1):
                fake.user_says(chat, ann, question)
                answer = fake.wait_for_messages(chat, n, timeout=120)[-1].text
                print(f"Q: {question}\n{answer}\n")
                if QUOTE not in answer:
                    failures.append(f"no {QUOTE!r} in the answer to {question!r}")
            deadline = time.monotonic() + 240
            while health(name)["Status"] == "starting" and time.monotonic() < deadline:
                time.sleep(5)
            state = health(name)
            print("health:", state["Status"])
            if state["Status"] != "healthy":
                failures.append(f"health {state['Status']}: {state.get('Log')}")
            docker("stop", "-t", "30", name)
            code = docker("inspect", "--format", "{{.State.ExitCode}}", name)
            print("exit code after docker stop:", code)
            if code != "0":
                failures.append(f"exit code {code} after docker stop")
        finally:
            if failures:
                logs = subprocess.run(["docker", "logs", "--tail", "40", name],
                                      capture_output=True, text=True)  # fmt: skip
                print(logs.stdout + logs.stderr)
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
            subprocess.run(["docker", "volume", "rm", name], capture_output=True)
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
