"""An optional one-line answer on top of the quotes, phrased by any OpenAI-compatible chat
endpoint (a local llama.cpp or Ollama server, or a hosted one) the operator configures.

The quotes stay the answer's ground: the model sees only the question and the numbered
quotes, must answer from them or say NONE, and its line is dropped when it names a name
or a number that neither the quotes nor the question contain. Any failure (timeout,
error, an odd reply) leaves the answer as the quotes alone: phrasing never delays an
answer by more than its timeout and never replaces one.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence

import httpx

from bot.answer import Citation
from index.dates import MONTHS

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 300
SYSTEM_PROMPT = (
    "You answer questions about the news in one short sentence, using only the numbered "
    "quotes you are given. Answer in the language of the question. Name who, what, when "
    "or how many as the quotes say it, and nothing they do not say. If the quotes do not "
    "answer the question, reply exactly NONE."
)
_TOKEN = re.compile(r"\w+(?:[.,'’-]\w+)*")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


# Capitalised words that are not names: a model may write them without any source.
_DAYS = (
    "monday tuesday wednesday thursday friday saturday sunday "
    "lundi mardi mercredi jeudi vendredi samedi dimanche"
)
_COMMON = frozenset({"i", *MONTHS, *_DAYS.split()})


def ungrounded(line: str, sources: Sequence[str]) -> list[str]:
    """The names and numbers of `line` that no source text contains: capitalised words
    after its first word (months and days aside), and anything with a digit."""
    known = _fold(" ".join(sources))
    missing = []
    for i, match in enumerate(_TOKEN.finditer(line)):
        token = match.group(0)
        folded = _fold(token)
        wanted = any(ch.isdigit() for ch in token) or (
            i > 0 and token[:1].isupper() and folded.strip(".") not in _COMMON
        )
        if wanted and folded not in known:
            missing.append(token)
    return missing


def user_prompt(question: str, citations: Sequence[Citation]) -> str:
    quotes = "\n".join(
        f"[{c.n}] «{c.quote}» ({', '.join(x for x in (c.source, c.date) if x)})" for c in citations
    )
    return f"Question: {question}\n\nQuotes:\n{quotes}"


class Phraser:
    """Calls `{base_url}/chat/completions` (OpenAI's API shape) for one line per answer."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
        )

    def phrase(self, question: str, citations: Sequence[Citation]) -> str | None:
        """The one-line answer, or None (the quotes do not answer, or anything failed)."""
        if not citations:
            return None
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(question, citations)},
            ],
            "temperature": 0,
            "max_tokens": 120,
        }
        try:
            response = self._client.post("chat/completions", json=body)
            response.raise_for_status()
            line = str(response.json()["choices"][0]["message"]["content"] or "")
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("phrasing failed, answering with the quotes alone: %s", exc)
            return None
        line = " ".join(line.split())
        if not line or "NONE" in line or len(line) > MAX_LINE_CHARS:
            return None
        sources = [question] + [f"{c.title} {c.quote} {c.source} {c.date}" for c in citations]
        missing = ungrounded(line, sources)
        if missing:
            log.warning("phrased line dropped, not in the quotes: %s", ", ".join(missing))
            return None
        return line

    def close(self) -> None:
        self._client.close()
