"""Loaders: the seed's shape, markdown, JSON/JSONL, stable ids, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.articles import (
    Article,
    ArticleError,
    is_heading,
    load_articles,
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
        json.dumps([{"title": "Hello", "text": "Body one.", "date": "2024-02", "source": "AP"}])
    )
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"title": "A", "text": "Alpha text.", "url": "https://x.org/a", "lang": "en"})
        + "\n"
        + json.dumps({"title": "B", "text": "Beta text."})
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
    (tmp_path / "mixed.jsonl").write_text('{"text": "Good line."}\nnot json\n{"text": ""}\n')
    result = load_articles([tmp_path, tmp_path / "missing.md"])
    assert [a.text for a in result.articles] == ["Un texte valide.", "Good line."]
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
