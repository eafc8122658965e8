"""The optional phrased line: an OpenAI-compatible server on 127.0.0.1 stands in for the
operator's model (an external edge); everything else is the real engine."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.engine import Engine
from bot.phrasing import ungrounded
from bot.render import render_answer
from tests.conftest import SEED

QUESTION = "who denied signing an accord?"
QUOTE = "Aucun accord n'a été signé et il n'était pas prévu d'en signer"
LINE = "Dmitri Peskov, the Kremlin spokesman, denied that any accord was signed."


class FakeLLM:
    """Answers /v1/chat/completions with `reply` (or `status`), after `delay` seconds."""

    def __init__(self) -> None:
        self.reply: str = LINE
        self.status = 200
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                time.sleep(fake.delay)
                payload = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": fake.reply}}]}
                ).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def served() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture
def llm(served: FakeLLM) -> FakeLLM:
    """The module's fake, reset: answers LINE at once."""
    served.reply, served.status, served.delay = LINE, 200, 0.0
    served.requests.clear()
    return served


@pytest.fixture(scope="module")
def engine(
    served: FakeLLM, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, embedder: Any
) -> Iterator[Engine]:
    data_dir = tmp_path_factory.mktemp("phrasing")
    (data_dir / "articles").mkdir()
    shutil.copy(SEED, data_dir / "articles" / SEED.name)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data_dir,
        cache_dir=cache_dir,
        llm_base_url=served.url,
        llm_model="tiny-news",
        llm_api_key="sk-test",
        llm_timeout=0.5,
    )
    engine = Engine(settings, embedder=embedder)
    engine.ingest([data_dir / "articles"])
    yield engine
    engine.close()


def test_a_phrased_line_tops_the_verbatim_quotes(llm: FakeLLM, engine: Engine) -> None:
    (answer,) = engine.ask([QUESTION])
    assert answer.phrased and answer.answer == LINE
    assert QUOTE in answer.citations[0].quote  # the quotes are unchanged
    (request,) = llm.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "tiny-news" and body["temperature"] == 0
    prompt = body["messages"][-1]["content"]
    assert QUESTION in prompt and answer.citations[0].quote in prompt and "ATS" in prompt
    first = render_answer(answer, "en")[0]
    assert first.startswith(f"<b>{LINE}</b>\n\n<b>1.</b> ")
    assert answer.to_json()["phrased"] is True


@pytest.mark.parametrize(
    ("reply", "status", "delay", "why"),
    [
        ("NONE", 200, 0.0, "the model says the quotes do not answer"),
        (LINE, 500, 0.0, "the server fails"),
        (LINE, 200, 3.0, "the server is slower than llm_timeout"),
        ("Vladimir Putin denied it in 2024.", 200, 0.0, "a name and a year no quote has"),
        ("", 200, 0.0, "an empty reply"),
    ],
)
def test_anything_wrong_leaves_the_quotes_alone(
    llm: FakeLLM, engine: Engine, reply: str, status: int, delay: float, why: str
) -> None:
    llm.reply, llm.status, llm.delay = reply, status, delay
    started = time.monotonic()
    (answer,) = engine.ask([QUESTION])
    elapsed = time.monotonic() - started
    assert answer.answered and not answer.phrased, why
    assert answer.answer == answer.citations[0].quote and QUOTE in answer.answer
    assert len(llm.requests) == 1
    assert elapsed < 2.5  # the timeout held (the fake would take 3 s)


def test_refusals_never_ask_the_model(llm: FakeLLM, engine: Engine) -> None:
    (answer,) = engine.ask(["Who won the 2018 football World Cup?"])
    assert not answer.answered and not answer.phrased and llm.requests == []


def test_the_phrased_line_is_escaped(llm: FakeLLM, engine: Engine) -> None:
    llm.reply = "Peskov said <i>no</i> & left"
    (answer,) = engine.ask([QUESTION])
    assert answer.phrased
    assert render_answer(answer, "en")[0].startswith(
        "<b>Peskov said &lt;i&gt;no&lt;/i&gt; &amp; left</b>"
    )


def test_names_and_numbers_must_come_from_the_sources() -> None:
    sources = ["Dmitri Peskov a démenti le 15 septembre 2023, a dit l'ATS."]
    assert ungrounded("Dmitri Peskov denied it on 15 September 2023.", sources) == []
    assert ungrounded("Peskov and Lavrov denied it in 2024.", sources) == ["Lavrov", "2024"]
    assert ungrounded("It was Peskov.", sources) == []  # the first word may be capitalised
