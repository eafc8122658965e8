"""Rendering answers as Telegram HTML, checked with the fake server's copy of Telegram's
parser: escaping, links, the 4096-unit limit, splitting, shortening, the plain fallback."""

from __future__ import annotations

import pytest

from bot.answer import Answer, Citation
from bot.render import plain_text, render_answer

from .fake_bot_api import parse_html, utf16_len

EMOJI = "🗞"  # two UTF-16 code units


def citation(n: int, quote: str, **fields: str | None) -> Citation:
    values: dict[str, str | None] = {
        "title": f"Title {n}", "source": "ATS", "date": "2023-09",
        "url": f"https://example.org/{n}",
    }  # fmt: skip
    values.update(fields)
    return Citation(
        n=n, article_id=f"a{n}", quote=quote, score=0.9,
        title=values["title"] or "", source=values["source"] or "", date=values["date"],
        url=values["url"],
    )  # fmt: skip


def answer_of(*citations: Citation, answer: str | None = None) -> Answer:
    return Answer("q?", True, answer or citations[0].quote, list(citations))


def visible(messages: list[str]) -> list[tuple[str, list[dict[str, object]]]]:
    """What Telegram shows for each message (raises as Telegram refuses bad HTML)."""
    return [parse_html(m, strict_ampersand=True) for m in messages]


def test_every_field_is_escaped_and_only_web_urls_become_links() -> None:
    hostile = citation(
        1, "Prices of fish & chips <script>alert(1)</script> rose > 20%.",
        title='<b>"Fish" & chips</b>', source="Coast & Co <News>", date="2024-03-02",
        url='https://example.org/a?x=1&y="2"',
    )  # fmt: skip
    scheme = citation(2, "A quote.", url="javascript:alert(1)")
    relative = citation(3, "Another quote.", url="/relative/path")

    (message,) = render_answer(answer_of(hostile, scheme, relative), "en")
    text, entities = parse_html(message, strict_ampersand=True)

    assert text.startswith(
        '1. <b>"Fish" & chips</b> — Coast & Co <News>, 2024-03-02\n'
        "Prices of fish & chips <script>alert(1)</script> rose > 20%.\n\n2. Title 2 — ATS"
    )
    links = [e for e in entities if e["type"] == "text_link"]
    assert [link["url"] for link in links] == ['https://example.org/a?x=1&y="2"']
    assert "javascript" not in message and "/relative/path" not in message
    assert [e["type"] for e in entities].count("blockquote") == 3


def test_a_long_answer_is_split_between_citations_within_the_limit() -> None:
    citations = [citation(n, f"Sentence {n} {EMOJI} " + "word " * 180) for n in range(1, 11)]

    messages = render_answer(answer_of(*citations), "en")

    assert len(messages) >= 3
    shown = visible(messages)
    for html_message, (text, entities) in zip(messages, shown, strict=True):
        assert utf16_len(text) <= 4096 and utf16_len(plain_text(html_message)) <= 4096
        assert text[:1].isdigit() and [e["type"] for e in entities].count("blockquote") >= 1
    numbers = [int(line.split(".")[0]) for text, _ in shown for line in text.split("\n")
               if line[:1].isdigit()]  # fmt: skip
    assert numbers == list(range(1, 11))
    assert "".join(text for text, _ in shown).count("word") == 180 * 10  # nothing cut


def test_a_citation_longer_than_a_message_has_its_quote_shortened() -> None:
    huge = citation(1, (EMOJI + " news ") * 2000 + "THE END")

    (message,) = render_answer(answer_of(huge, citation(2, "Short one.")), "en")[:1]
    text, entities = parse_html(message, strict_ampersand=True)

    assert 4000 < utf16_len(text) <= 4096
    (quote,) = [e for e in entities if e["type"] == "blockquote"]
    quoted = text.encode("utf-16-le")[2 * quote["offset"] :][: 2 * quote["length"]]
    assert quoted.decode("utf-16-le").endswith(f"{EMOJI}…") and "THE END" not in text
    assert utf16_len(plain_text(message)) <= 4096


def test_a_phrased_answer_different_from_the_quote_comes_first() -> None:
    (message,) = render_answer(answer_of(citation(1, "The quote."), answer="Peskov & co."), "en")

    assert parse_html(message)[0].startswith("Peskov & co.\n\n1. Title 1 — ATS, 2023-09\n")


@pytest.mark.parametrize(
    ("lang", "start"),
    [("en", "I found nothing on this"), ("fr", "Je n'ai rien trouvé"), ("de", "I found")],
)
def test_no_source_is_one_plain_sentence_in_the_users_language(lang: str, start: str) -> None:
    (message,) = render_answer(Answer("q?", False, "The indexed news has nothing on this."), lang)

    assert message.startswith(start) and parse_html(message)[1] == []


def test_plain_text_keeps_link_targets_and_drops_markup() -> None:
    (message,) = render_answer(answer_of(citation(1, "5 < 6 & 7 > 3")), "en")

    assert plain_text(message) == (
        "1. Title 1 (https://example.org/1) — ATS, 2023-09\n5 < 6 & 7 > 3"
    )


@pytest.mark.parametrize(
    ("lang", "said"), [("en", "Same article as 1"), ("fr", "Même article qu'en 1")]
)
def test_a_second_quote_of_one_article_names_the_article_once(lang: str, said: str) -> None:
    first = citation(1, "The harbour master closed two quays.", title="Port & ships")
    second = Citation(
        n=2, article_id=first.article_id, quote="Three tugs freed the ship <at> high tide.",
        score=0.8, title=first.title, source=first.source, date=first.date, url=first.url,
    )  # fmt: skip
    (message,) = render_answer(answer_of(first, second), lang)
    text, entities = parse_html(message, strict_ampersand=True)
    assert text == (
        "1. Port & ships — ATS, 2023-09\nThe harbour master closed two quays.\n\n"
        f"2. {said}\nThree tugs freed the ship <at> high tide."
    )
    assert [e["type"] for e in entities].count("text_link") == 1
