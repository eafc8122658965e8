"""Settings read from real NEWSBOT_* environment variables (and a .env file), in every
form the README documents, and junk refused with one clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.cli import main
from bot.config import Settings
from index.feeds import FeedSource
from tests.conftest import REPO


def settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings from these environment variables alone (no .env file)."""
    for name, value in env.items():
        monkeypatch.setenv(f"NEWSBOT_{name.upper()}", value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("1001", [1001]),  # the Docker example: -e NEWSBOT_ADMIN_IDS=123
        ("1001,1002", [1001, 1002]),
        ("1001, 1002", [1001, 1002]),
        ("1001 1002", [1001, 1002]),
        ("[1001]", [1001]),
        ("[1001, 1002]", [1001, 1002]),
        (" [ 1001 ,1002 ] ", [1001, 1002]),
        ("", []),
        ("[]", []),
    ],
)
def test_admin_ids_in_every_documented_form(
    monkeypatch: pytest.MonkeyPatch, value: str, ids: list[int]
) -> None:
    assert settings_from_env(monkeypatch, admin_ids=value).admin_ids == ids


def test_admin_ids_unset_means_no_admins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSBOT_ADMIN_IDS", raising=False)
    assert Settings(_env_file=None).admin_ids == []  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "'abc' is not a user id; expected Telegram user ids like 123,456 or [123, 456]"),
        ("1001;1002", "'1001;1002' is not a user id"),
        ("-1001", "'-1001' is not a user id"),
        ('[1001, "x"]', "'x' is not a user id"),
        ("[1001, true]", "'true' is not a user id"),
        ("[1001", "not a valid JSON list; expected Telegram user ids like 123,456 or [123, 456]"),
        ("[" * 100_000, "not a valid JSON list"),
    ],
)
def test_admin_ids_junk_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        settings_from_env(monkeypatch, admin_ids=value)


def test_bad_admin_ids_stop_the_command_line_with_one_sentence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("NEWSBOT_ADMIN_IDS", "abc")
    assert main(["stats"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("newsbot: invalid setting: admin_ids: ") and "'abc' is not a user id" in err
    )
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def _readme_feed_examples() -> list[str]:
    """The NEWSBOT_FEEDS='…' values the README shows, as a shell would pass them."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^NEWSBOT_FEEDS='(.*?)'$", readme, re.MULTILINE | re.DOTALL)


def test_the_readme_feed_examples_are_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    urls, objects = _readme_feed_examples()
    assert settings_from_env(monkeypatch, feeds=urls).feeds == [
        FeedSource("https://www.theguardian.com/world/rss"),
        FeedSource("https://www.letemps.ch/articles.rss"),
    ]
    assert "\n" in objects  # the README spreads this one over two lines
    assert settings_from_env(monkeypatch, feeds=objects).feeds == [
        FeedSource("https://www.letemps.ch/articles.rss", source="Le Temps", lang="fr"),
        FeedSource("https://www.theguardian.com/world/rss"),
    ]


def test_feeds_from_a_dotenv_file_and_empty_or_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NEWSBOT_FEEDS", raising=False)
    assert Settings(_env_file=None).feeds == []  # type: ignore[call-arg]
    assert settings_from_env(monkeypatch, feeds="").feeds == []  # "leave NEWSBOT_FEEDS empty"
    monkeypatch.delenv("NEWSBOT_FEEDS")
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"NEWSBOT_FEEDS='{_readme_feed_examples()[1]}'\nNEWSBOT_ADMIN_IDS=[7, 8]\n",
        encoding="utf-8",
    )
    settings = Settings(_env_file=dotenv)  # type: ignore[call-arg]
    assert [f.source for f in settings.feeds] == ["Le Temps", None]
    assert settings.admin_ids == [7, 8]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://www.theguardian.com/world/rss", "feeds: not valid JSON"),
        ('["https://a.example/rss", "https://a.example/rss/"]', "item 2 repeats item 1"),
        ('["https://a.example/\\ud800", 5]', "feeds: item 2: expected a URL"),
    ],
)
def test_feeds_junk_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        settings_from_env(monkeypatch, feeds=value)


def test_empty_values_mean_unset_where_the_readme_says_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_env(
        monkeypatch,
        telegram_token="",
        webhook_url="",
        webhook_secret="",
        llm_base_url=" ",
        llm_api_key="",
        health_path="",
    )
    assert settings.telegram_token is None and settings.webhook_url is None
    assert settings.webhook_secret is None  # "random per start", not refused
    assert settings.llm_base_url is None and settings.llm_api_key is None
    assert settings.health_path == ""  # "empty: none"
    with pytest.raises(ValidationError, match="may only hold 1-256 of A-Z a-z 0-9 _ -"):
        settings_from_env(monkeypatch, webhook_secret="not secret!")
