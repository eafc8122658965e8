"""Loaders: the seed's shape, markdown, JSON/JSONL, stable ids, and bad files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from index.articles import (
    MAX_ARTICLE_CHARS,
    Article,
    ArticleError,
    article_problem,
    clean_text,
    is_heading,
    load_articles,
    load_file,
    normalise_date,
    parse_seed_text,
)
from tests.conftest import SEED


def test_seed_article_is_parsed_into_its_fields() -> None:
    article = parse_seed_text(SEED.read_text(encoding="utf-8"))
    assert article.date == "2023-09"
    assert article.source == "ATS"
    assert article.text.startswith("Le Kremlin a assuré vendredi")
    assert "/ATS" not in article.text and not article.text.startswith("date")
    assert "'Aucun accord n'a été signé et il n'était pas prévu d'en signer'" in article.text
    assert article.title.startswith("Le Kremlin a assuré vendredi")
    paragraphs = article.text.split("\n\n")
    assert "Echange de fusils" in paragraphs and "Importants stocks" in paragraphs


def test_headings_are_short_lines_without_final_punctuation() -> None:
    assert is_heading("Echange de fusils")
    assert is_heading("'Violation directe'")
    assert not is_heading("Aucune date n'a cependant été communiquée.")
    assert not is_heading("Ceci est une phrase assez longue sans point final qui continue " * 2)


def test_article_ids_are_stable_and_url_based_when_there_is_a_url() -> None:
    a = Article(title="T", text="x", url="https://Example.com/a/?utm_source=rss#top")
    b = Article(title="Other title", text="y", url="https://example.com/a")
    assert a.id == b.id
    c = Article(title="T", text="x", source="ATS", date="2023-09")
    assert c.id == Article(title="T", text="changed", source="ATS", date="2023-09").id
    assert c.id != Article(title="T", text="x", source="AFP", date="2023-09").id
    assert parse_seed_text(SEED.read_text()).id == parse_seed_text(SEED.read_text()).id


def test_markdown_and_json_loaders(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "date: 2024-01-05\nsource: Le Monde\nurl: https://lemonde.fr/x\n\n# Un titre\n\n"
        "Premier paragraphe du texte.\n\n## Une section\n\nSecond paragraphe.\n",
        encoding="utf-8",
    )
    (tmp_path / "b.json").write_text(
        json.dumps(
            [{"title": "Hello", "text": "The body of one.", "date": "2024-02", "source": "AP"}]
        )
    )
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"title": "A", "text": "Alpha's text.", "url": "https://x.org/a", "lang": "en"})
        + "\n"
        + json.dumps({"title": "B", "text": "The beta text."})
        + "\n"
    )
    result = load_articles([tmp_path])
    assert result.errors == []
    by_title = {a.title: a for a in result.articles}
    md = by_title["Un titre"]
    assert (md.date, md.source, md.url) == ("2024-01-05", "Le Monde", "https://lemonde.fr/x")
    assert md.text == "Premier paragraphe du texte.\n\nUne section\n\nSecond paragraphe."
    assert by_title["Hello"].date == "2024-02" and by_title["Hello"].source == "AP"
    assert by_title["A"].lang == "en" and by_title["A"].url == "https://x.org/a"
    assert {"A", "B"} <= set(by_title)


def test_bad_files_are_reported_by_name_and_the_rest_still_load(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("date 2024-03-01 Un texte valide.\n\n/AFP\n")
    (tmp_path / "latin1.txt").write_bytes("date 2024-03 Café à Paris.".encode("latin-1"))
    (tmp_path / "broken.json").write_text('{"title": "x", "text": ')
    (tmp_path / "notext.json").write_text('{"title": "x"}')
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "baddate.json").write_text('{"text": "t", "date": "yesterday"}')
    (tmp_path / "mixed.jsonl").write_text(
        '{"text": "A good line of text."}\nnot json\n{"text": ""}\n'
    )
    result = load_articles([tmp_path, tmp_path / "missing.md"])
    assert [a.text for a in result.articles] == ["Un texte valide.", "A good line of text."]
    joined = "\n".join(result.errors)
    for name in ("latin1.txt", "broken.json", "notext.json", "empty.txt", "baddate.json"):
        assert name in joined
    assert "not UTF-8" in joined and "invalid JSON" in joined and "missing.md" in joined
    assert "mixed.jsonl:2" in joined and "mixed.jsonl:3" in joined


@pytest.mark.parametrize("value", ["2023-13", "23-09", "September 2023"])
def test_bad_dates_are_refused(value: str) -> None:
    with pytest.raises(ArticleError):
        normalise_date(value)


def test_language_is_guessed_when_not_given() -> None:
    result = load_articles([SEED])
    assert result.articles[0].lang == "fr"


# --- hostile and broken input ----------------------------------------------------------

GOOD = "The harbour of Portville reopened on Tuesday after a storm closed it."


def test_deeply_nested_json_is_one_error_and_the_rest_of_the_batch_loads(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "lines.jsonl").write_text(
        json.dumps({"text": GOOD})
        + "\n"
        + "[" * 100_000
        + "\n"
        + json.dumps({"text": GOOD + " Again."})
        + "\n"
    )
    (tmp_path / "good.json").write_text(json.dumps({"title": "Fine", "text": GOOD}))
    result = load_articles([tmp_path])
    assert [a.title for a in result.articles if a.title == "Fine"] == ["Fine"]
    assert len(result.articles) == 3
    assert result.errors == [
        f"{tmp_path / 'deep.json'}: invalid JSON: nested too deeply",
        f"{tmp_path / 'lines.jsonl'}:2: invalid JSON: nested too deeply",
    ]
    with pytest.raises(ArticleError, match=r"deep\.json: invalid JSON: nested too deeply"):
        list(load_file(tmp_path / "deep.json"))


def test_clean_text_replaces_lone_surrogates_and_drops_control_characters() -> None:
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("\udcff\udcfe who?") == "\ufffd\ufffd who?"  # argv's undecodable bytes
    assert clean_text("\ud83d\ude00") == "\U0001f600"  # a pair is one character, kept
    assert clean_text("a\x00b\x07c\x1bd\x7fe\x9ff") == "abcdef"
    assert clean_text("tab\there\nnew line") == "tab\there\nnew line"
    assert clean_text("one\r\ntwo\rthree\x85four\u2028five\u2029six") == (
        "one\ntwo\nthree\nfour\nfive\n\nsix"
    )
    kept = "é ß 中文 \u200b\u00ad 😀 \ufffd"
    assert clean_text(kept) == kept


def test_lone_surrogates_and_controls_in_records_become_clean_articles(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(
        '{"title": "Storm \\ud800 hits", "text": "The storm\\u0000 hit \\udfff the coast.\\u0007",'
        ' "source": "Wire\\u0001"}'
    )
    (tmp_path / "b.jsonl").write_text(
        '{"title": "Flood\\ud83d", "text": "A flood covered the \\ud800 valley.", '
        '"id": "x\\u0000"}\n'
    )
    (tmp_path / "raw-tab.json").write_text('{"text": "A raw\ttab and a raw\x01 control."}')
    result = load_articles([tmp_path])
    assert result.errors == []
    by_source = {a.title: a for a in result.articles}
    storm = by_source["Storm \ufffd hits"]
    assert (storm.text, storm.source) == ("The storm hit \ufffd the coast.", "Wire")
    flood = by_source["Flood\ufffd"]
    assert flood.text == "A flood covered the \ufffd valley." and flood.id == "x"
    assert by_source["A raw\ttab and a raw control."].text == "A raw\ttab and a raw control."
    for article in result.articles:  # what the store does with them: hash and encode
        assert article.content_hash and article.text.encode("utf-8")
    built = Article(title="T\ud800", text="x\x00y", source="S\x9f", url="https://a.example/\ud800")
    assert (built.title, built.text, built.source) == ("T\ufffd", "xy", "S")
    assert built.id == Article(title="T", text="", url="https://a.example/\ufffd").id


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**5000, "date (a number of thousands of digits) is out of range"),
        (123456, "date 123456 is out of range"),
        ([2023], "date must be a string like YYYY-MM-DD, not a list"),
        ({"year": 2023}, "date must be a string like YYYY-MM-DD, not an object"),
        (float("nan"), "date must be a string like YYYY-MM-DD, not the number nan"),
        (True, "date must be a string like YYYY-MM-DD, not true"),
        ("Mon, 01 Jan 99999999999999999999 00:00:00", "is not YYYY-MM, YYYY-MM-DD"),
    ],
    ids=["5000-digits", "6-digits", "list", "object", "nan", "bool", "year-overflow"],
)
def test_dates_that_are_no_date_get_a_clear_error(value: object, message: str) -> None:
    with pytest.raises(ArticleError, match=re.escape(message)):
        normalise_date(value)


def test_a_5000_digit_date_in_a_record_costs_only_that_record(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_text(
        f'[{{"text": "{GOOD}", "date": {"9" * 5000}}}, {{"text": "{GOOD}", "date": 2023}}]'
    )
    (tmp_path / "big.jsonl").write_text(f'{{"text": "{GOOD}", "date": -{"1" * 5000}}}\n')
    result = load_articles([tmp_path])
    assert [a.date for a in result.articles] == ["2023"]
    assert result.errors == [
        f"{tmp_path / 'big.json'}: record 1: date (a number of thousands of digits) is out of "
        "range (a year has four digits)",
        f"{tmp_path / 'big.jsonl'}:1: date (a number of thousands of digits) is out of range "
        "(a year has four digits)",
    ]


def test_jsonl_splits_on_newlines_only_and_reports_a_line_that_is_not_utf8(
    tmp_path: Path,
) -> None:
    separators = {"text": "One\u2028line, a paragraph\u2029and a next\u0085line of text."}
    lines = [
        json.dumps(separators, ensure_ascii=False).encode("utf-8"),
        b'{"text": "Caf\xe9 au lait, in Latin-1, on this line."}',
        json.dumps({"text": GOOD}).encode("utf-8") + b"\r",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    result = load_articles([path])
    assert [a.text for a in result.articles] == [
        "One line, a paragraph\n\nand a next line of text.",
        GOOD,
    ]
    assert result.errors == [f"{path}:2: not UTF-8 text (invalid continuation byte at byte 13)"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("nul.txt", b"\x00" * 4096),
        ("nul.json", json.dumps({"text": "\x00" * 50}).encode()),
        ("zero-width.txt", ("\u200b\u200c\u200d\u2060\ufeff" * 40).encode()),
        ("zero-width.md", ("# \u200b\n\n" + "\u200b " * 100).encode()),
        ("dollar.txt", b"$"),
        ("digits.jsonl", json.dumps({"text": "2024 - 12 + 31 = 42 ! $ %"}).encode()),
    ],
)
def test_junk_is_not_an_article(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    (tmp_path / "good.json").write_text(json.dumps({"text": GOOD}))
    result = load_articles([tmp_path])
    assert [a.text for a in result.articles] == [GOOD]
    (error,) = result.errors
    assert error.startswith(str(tmp_path / name))
    assert "no readable words" in error or "is empty" in error or "no body text" in error


def test_article_problem_names_unreadable_and_too_long_texts(tmp_path: Path) -> None:
    assert article_problem(Article(title="t", text=GOOD)) is None
    assert article_problem(Article(title="t", text="abcde fghij")) is None  # 10 letters
    assert article_problem(Article(title="t", text="abcde fghi 12345")) is not None
    short = article_problem(Article(title="t", text="\u200b$ 12 \x00 é"))
    assert short == "the text has no readable words (fewer than 10 letters)"
    assert (
        article_problem(Article(title="t", text="abcdefghij" * (MAX_ARTICLE_CHARS // 10))) is None
    )
    repeated = article_problem(Article(title="t", text="a" * 1000 + " " + "b" * 1000))
    assert repeated == "the text is not words (fewer than 5 different letters)"
    long_text = "word " * 60_001
    assert article_problem(Article(title="t", text=long_text)) == (
        "the text is 300,005 characters long; the limit is 300,000"
    )
    (tmp_path / "book.json").write_text(json.dumps({"text": long_text}))
    (error,) = load_articles([tmp_path]).errors
    assert error == (
        f"{tmp_path / 'book.json'}: the text is 300,004 characters long; the limit is 300,000"
    )


def test_files_and_lines_too_big_for_an_article_are_refused_unread(tmp_path: Path) -> None:
    from index.articles import MAX_RECORD_BYTES

    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * (MAX_RECORD_BYTES // 5 + 10))
    lines = tmp_path / "lines.jsonl"
    good = json.dumps({"title": "Good", "text": GOOD})
    lines.write_bytes(
        (good + "\n").encode()
        + b'{"text": "'
        + b"x" * (MAX_RECORD_BYTES + 10)
        + b'"}\n'
        + (good.replace("Good", "Also good") + "\n").encode()
    )
    loaded = load_articles([big, lines])
    assert [a.title for a in loaded.articles] == ["Good", "Also good"]
    assert len(loaded.errors) == 2
    assert "big.txt: the file is" in loaded.errors[0] and "the limit is" in loaded.errors[0]
    assert "lines.jsonl:2: the line is over" in loaded.errors[1]
