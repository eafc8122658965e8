"""Hostile input, generated: batches of files and feeds mixing good items with broken or
malicious ones, and hostile questions. Every good item must be indexed, every bad one named
in a clear message, and nothing may raise. Seeded, so a failure reproduces."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from bot.engine import Engine
from bot.poll import poll_feeds
from bot.state import open_state
from index.articles import MAX_ARTICLE_CHARS
from index.feeds import FeedSource
from tests.feed_server import FeedServer, serve

SEED = 20261203
WORDS = [
    *["council", "harbour", "storm", "minister", "budget", "strike", "vaccine", "election"],
    *["river", "bridge", "court", "festival", "museum", "railway", "drought", "wildfire"],
    *["factory", "treaty", "summit", "tariff"],
]


def _story(rng: random.Random, marker: str) -> tuple[str, str]:
    """A title and a two-sentence text that name `marker` (a word found nowhere else)."""
    a, b, c = rng.sample(WORDS, 3)
    title = f"The {a} of {marker} and the {b}"
    text = (
        f"The {a} in {marker} was discussed by the {b} committee on Monday. "
        f"Officials said the {c} would reopen within {rng.randint(2, 90)} days."
    )
    return title, text


# --- files -----------------------------------------------------------------------------


def _good_file(rng: random.Random, folder: Path, n: int) -> tuple[Path, list[str]]:
    """A good file of a random format; returns it and the markers it holds."""
    kind = rng.choice(["txt", "md", "json", "jsonl"])
    path = folder / f"good_{n}.{kind}"
    marker = f"Zorvex{n}"
    title, text = _story(rng, marker)
    if kind == "txt":
        path.write_text(f"date 2024-05-{rng.randint(1, 28):02d} {text}\n\n/WIRE\n", "utf-8")
    elif kind == "md":
        path.write_text(f"date: 2024-05-02\n\n# {title}\n\n{text}\n", "utf-8")
    elif kind == "json":
        second = f"Zorvex{n}b"
        records = [
            {"title": title, "text": text, "date": "2024-05-02", "source": "Wire"},
            # valid JSON that tripped the loaders: a raw U+2028 and an escaped lone surrogate
            {"title": _story(rng, second)[0], "text": _story(rng, second)[1] + "\u2028\ud800"},
        ]
        path.write_text(json.dumps(records), "utf-8")  # the lone surrogate as \\ud800
        return path, [marker, second]
    else:
        line = json.dumps({"title": title, "text": text + " \u2028 Updated."}, ensure_ascii=False)
        path.write_text(line + "\n", "utf-8")
    return path, [marker]


BadFile = Callable[[random.Random, Path], None]
BAD_FILES: dict[str, BadFile] = {
    "nested.json": lambda r, p: p.write_text("[" * 100_000 + "]" * 100_000),
    "nested_obj.json": lambda r, p: p.write_text('{"text": ' * 50_000 + "1" + "}" * 50_000),
    "not_utf8.txt": lambda r, p: p.write_bytes(b"date 2024-01-01 caf\xe9 \xff\xfe broken bytes."),
    "nul.txt": lambda r, p: p.write_bytes(b"\0" * r.randint(1, 5000)),
    "zero_width.md": lambda r, p: p.write_text("\u200b\u200c\u200d\ufeff" * 50, "utf-8"),
    "dollar.txt": lambda r, p: p.write_text("$"),
    "empty.txt": lambda r, p: p.write_text(""),
    "blank.md": lambda r, p: p.write_text("\n \n\t\n"),
    "huge_int_date.json": lambda r, p: p.write_text(
        '{"text": "A storm hit the harbour of Brest on Monday night.", "date": ' + "9" * 5000 + "}"
    ),
    "bad_month.json": lambda r, p: p.write_text(
        '{"text": "A storm hit the harbour of Brest on Monday night.", "date": "2024-13"}'
    ),
    "date_list.json": lambda r, p: p.write_text(
        '{"text": "A storm hit the harbour of Brest on Monday night.", "date": [2024]}'
    ),
    "title_number.json": lambda r, p: p.write_text(
        '{"text": "A storm hit the harbour of Brest on Monday night.", "title": 12}'
    ),
    "no_text.json": lambda r, p: p.write_text('{"title": "Only a title"}'),
    "scalar.json": lambda r, p: p.write_text("42"),
    "truncated.json": lambda r, p: p.write_text('{"text": "A storm hit'),
    "binary.md": lambda r, p: p.write_bytes(bytes(r.getrandbits(8) for _ in range(3000))),
    "too_long.txt": lambda r, p: p.write_text("Word " * (MAX_ARTICLE_CHARS // 5 + 10) + "."),
}


def _jsonl_mixed(rng: random.Random, path: Path, n: int) -> tuple[list[str], list[int]]:
    """A JSONL file mixing good lines with bad ones; returns the good markers and the line
    numbers of the bad lines."""
    lines: list[str] = []
    good: list[str] = []
    bad: list[int] = []
    for i in range(rng.randint(3, 8)):
        if rng.random() < 0.4:
            lines.append(
                rng.choice(
                    [
                        "{not json",
                        "[" * 20_000,
                        '["a", "list"]',
                        '{"text": ""}',
                        '{"text": "\\u200b\\u200b"}',
                        '{"text": "A storm hit Brest.", "date": "yesterday"}',
                    ]
                )
            )
            bad.append(len(lines))
        else:
            marker = f"Quillon{n}x{i}"
            title, text = _story(rng, marker)
            lines.append(json.dumps({"title": title, "text": text, "date": "2024-06-01"}))
            good.append(marker)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return good, bad


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEWSBOT_CACHE_DIR", str(settings.cache_dir))
    return Path(settings.data_dir)


def test_batches_of_files_mixing_bad_with_good_lose_nothing_and_name_every_bad_one(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], embedder
) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(SEED)
    expected: set[str] = set()
    for batch in range(4):
        folder = tmp_path / f"batch{batch}"
        folder.mkdir()
        bad_names: list[str] = []
        bad_lines: list[str] = []
        for n in range(batch * 100, batch * 100 + 18):
            _, markers = _good_file(rng, folder, n)
            expected.update(markers)
        for name, make in rng.sample(sorted(BAD_FILES.items()), 10):
            make(rng, folder / f"{batch}_{name}")
            bad_names.append(f"{batch}_{name}")
        for j in range(3):
            good, bad = _jsonl_mixed(rng, folder / f"mixed_{batch}_{j}.jsonl", batch * 10 + j)
            expected.update(good)
            bad_lines += [f"mixed_{batch}_{j}.jsonl:{line}:" for line in bad]
        capsys.readouterr()
        assert main(["ingest", str(folder)]) == 0
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        errors = [line for line in captured.err.splitlines() if line.startswith("skipped ")]
        for name in bad_names:  # each bad file named, with a reason, on its own line
            assert any(name in line and ": " in line for line in errors), (name, captured.err)
        for where in bad_lines:
            assert any(where in line for line in errors), (where, captured.err)
        assert len(errors) == len(bad_names) + len(bad_lines), captured.err
    engine = Engine(Settings(_env_file=None), embedder=embedder)
    indexed = " ".join(a.title + " " + a.text for a in engine.store.all_articles())
    missing = [m for m in expected if m + " " not in indexed and m + "." not in indexed]
    assert not missing
    assert engine.stats().articles == len(expected)
    for article in engine.store.all_articles():  # cleaned: nothing a tokenizer chokes on
        assert "\ud800" not in article.text and "\x00" not in article.text
    engine.close()


# --- feeds -----------------------------------------------------------------------------


def _rss(items: list[str], title: str = "Fuzz Wire") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://fuzz.test/</link>{''.join(items)}</channel></rss>"
    )


def _item(guid: str, title: str, text: str, date: str = "Mon, 02 Sep 2024 10:00:00 +0000") -> str:
    return (
        f"<item><guid>{guid}</guid><link>https://fuzz.test/{guid}</link><title>{title}</title>"
        f"<description>{text}</description><pubDate>{date}</pubDate></item>"
    )


BAD_FEEDS: dict[str, str] = {
    "html.rss": "<html><body><p>Not a feed at all</p></body></html>",
    "empty.rss": "",
    "truncated.rss": '<?xml version="1.0"?><rss version="2.0"><channel><item><title>Cut',
    "binary.rss": "\x00\x01\x02" * 500,
    "laughs.rss": (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
        '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">'
        ']><rss version="2.0"><channel><title>&e;</title><item><title>&e;</title>'
        "<description>&e;&e;&e;</description></item></channel></rss>"
    ),
}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as running:
        yield running


def test_feeds_mixing_bad_items_and_bad_feeds_with_good_ones_lose_nothing(
    server: FeedServer, settings: Settings, embedder
) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(SEED + 1)
    expected: set[str] = set()
    urls: list[str] = []
    for f in range(6):
        items: list[str] = []
        for i in range(rng.randint(4, 8)):
            marker = f"Feedix{f}x{i}"
            title, text = _story(rng, marker)
            shape = rng.choice(["plain", "surrogate", "nul", "control", "entity", "bad_date"])
            if shape == "surrogate":
                text += " &#xD800; &#55296; end."
            elif shape == "nul":
                text += " &#0; &#x1; end."
            elif shape == "control":
                title += "\x0b\x1f"
            elif shape == "entity":
                text += " &amp;lt;script&amp;gt; &#x1F600; &unknown; end."
            if shape == "bad_date":
                items.append(_item(marker, title, text, date="9" * 5000))
            else:
                items.append(_item(marker, title, text))
            expected.add(marker)
        for junk in range(rng.randint(1, 3)):  # items that are not articles
            items.append(_item(f"junk{f}x{junk}", "\u200b", "$"))
        urls.append(server.add(f"/fuzz{f}.rss", _rss(items), "application/rss+xml"))
    bad = [server.add(f"/bad/{n}", body, "application/rss+xml") for n, body in BAD_FEEDS.items()]
    config = settings.model_copy(
        update={
            "feeds": [FeedSource(url=u) for u in urls + bad],
            "allow_private_feeds": True,
            "fetch_pages": False,
            "fetch_timeout": 5.0,
        }
    )
    engine = Engine(config, embedder=embedder)
    state = open_state(config)
    report = poll_feeds(engine, state, config)
    assert report.index_error is None
    indexed = " ".join(a.title + " " + a.text for a in engine.store.all_articles())
    assert not [m for m in expected if m not in indexed]
    extra = [a.title for a in engine.store.all_articles() if "Feedix" not in a.title + a.text]
    assert not extra and engine.stats().articles == len(expected), extra
    records = {r.url: r for r in state.feeds()}
    for url in bad:  # each broken feed is recorded with its error; the round went on
        assert records[url].last_error, url
    assert not poll_feeds(engine, state, config).ingest.added  # and nothing twice
    engine.close()
    state.close()


# --- questions -------------------------------------------------------------------------


def _hostile_questions(rng: random.Random) -> list[str]:
    fixed = [
        "who denied signing an accord?",
        "\ud800 who denied signing an accord?",
        "\udcff\udcfe who denied",
        "who\x00 denied\x1b[31m signing",
        '"accord" OR * NEAR( ^ AND NOT -- ;DROP TABLE passages;',
        'passages_fts MATCH "x"',
        "<b>who</b> <a href='javascript:alert(1)'>denied</a> &amp; &#0;",
        "‮who denied signing an accord?‬",
        "\u200b\u200b\u200b",
        "🙂" * 200,
        "a" * 3000,
        "?" * 500,
        "Qui a nié la signature d'un accord ?",
        "誰が合意の署名を否定しましたか",
        "когда был подписан договор",
        "%s %d {0} {question} $(rm -rf /)",
        "\\u0000 \\N{NULL}",
        "who\ndenied\r\nsigning\tan\u2028accord",
    ]
    alphabet = [chr(c) for c in range(32, 0x3000) if not 0xD800 <= c <= 0xDFFF] + list(
        "\x00\x01\u200b\u2028\ufeff\ufffd\ud800\udfff\"'*()^:-"
    )
    randomised = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))) for _ in range(60)
    ]
    words = [" ".join(rng.choice([*WORDS, "OR", "AND", "NEAR", '"', "*"]) for _ in range(8))]
    return fixed + randomised + words


def test_hostile_questions_are_answered_or_refused_never_raise(
    settings: Settings, embedder
) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(settings, embedder=embedder)
    engine.ingest([settings.articles_dir])
    questions = [q for q in _hostile_questions(random.Random(SEED + 2))]
    answers = engine.ask(questions)
    assert len(answers) == len(questions)
    text = (settings.articles_dir / "000_15beeeafbb7eb3ba.txt").read_text("utf-8")
    for answer in answers:
        for citation in answer.citations:  # whatever was asked, quotes stay verbatim
            assert citation.quote in text
    assert answers[0].answered and answers[1].answered
    engine.close()


def test_hostile_questions_on_the_command_line_get_a_clear_message(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["ingest", str(env / "articles")])
    for question in ["", "   ", "\u200b", "x" * 20_000, "\udcff\udcfe"]:
        capsys.readouterr()
        code = main(["ask", question])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert code == 2 and captured.err.startswith("newsbot: "), (question[:20], captured)
    for bad_date in ["2024-13", "yesterday-ish", "99999", "2024-02-30x"]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["ask", "--since", bad_date, "who denied signing an accord?"])
        assert exited.value.code == 2 and bad_date in capsys.readouterr().err


def _mutated(rng: random.Random, feed: str) -> str:
    """A feed broken the ways real ones are: cut anywhere, bytes flipped, markup dropped or
    repeated, entities and encodings that lie."""
    how = rng.choice(["cut", "flip", "drop", "repeat", "entity", "encoding"])
    if how == "cut":
        return feed[: rng.randint(0, len(feed))]
    if how == "flip":
        chars = list(feed)
        for _ in range(rng.randint(1, 20)):
            chars[rng.randrange(len(chars))] = chr(rng.choice([0, 1, 0x3C, 0x26, 0xD7FF, 0xFFFE]))
        return "".join(chars)
    if how == "drop":
        start = rng.randrange(len(feed))
        return feed[:start] + feed[start + rng.randint(1, 200) :]
    if how == "repeat":
        start = rng.randrange(len(feed))
        return feed[:start] + feed[start : start + 300] * rng.randint(2, 50) + feed[start:]
    if how == "entity":
        return feed.replace("<description>", "<description>&#x110000;&#xFFFF;&bogus;&#", 1)
    return feed.replace('encoding="UTF-8"', 'encoding="ISO-2022-JP"')


def test_a_round_of_a_hundred_broken_feeds_never_aborts_and_loses_no_good_feed(
    server: FeedServer, settings: Settings, embedder
) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(SEED + 3)
    good_urls, expected = [], set()
    broken_urls = []
    for f in range(100):
        items = []
        for i in range(2 if f % 25 == 0 else 1):
            marker = f"Mutix{f}x{i}"
            title, text = _story(rng, marker)
            items.append(_item(marker, title, text))
        feed = _rss(items)
        if f % 25 == 0:  # a few feeds stay intact, among the broken ones
            good_urls.append(server.add(f"/m{f}.rss", feed, "application/rss+xml"))
            expected |= {f"Mutix{f}x0", f"Mutix{f}x1"}
        else:
            body = _mutated(rng, feed).encode("utf-8", "surrogatepass")
            broken_urls.append(server.add(f"/m{f}.rss", body, "application/rss+xml"))
    config = settings.model_copy(
        update={
            "feeds": [FeedSource(url=u) for u in broken_urls + good_urls],
            "allow_private_feeds": True,
            "fetch_pages": False,
            "fetch_timeout": 5.0,
        }
    )
    engine = Engine(config, embedder=embedder)
    state = open_state(config)
    report = poll_feeds(engine, state, config)
    assert report.feeds == 100 and report.index_error is None
    indexed = " ".join(a.title + " " + a.text for a in engine.store.all_articles())
    assert not [m for m in expected if m not in indexed]
    assert len(state.feeds()) == 100 and all(r.last_polled for r in state.feeds())
    engine.close()
    state.close()
