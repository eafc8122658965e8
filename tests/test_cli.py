"""The `newsbot` command end to end, in-process, on a temporary data dir with the seed."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest

from bot.cli import build_parser, main
from index.corpus import rebuild_lock
from tests.feed_server import serve

SEED_QUOTE = "Aucun accord n'a été signé et il n'était pas prévu d'en signer"


@pytest.fixture
def env(settings, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEWSBOT_CACHE_DIR", str(settings.cache_dir))
    return Path(settings.data_dir)


def _json_lines(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_ask_json_answers_in_english_and_french_and_refuses_off_topic(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(env / "articles")]) == 0
    capsys.readouterr()
    questions = [
        "who denied signing an accord?",
        "Qui a nié la signature d'un accord ?",
        "Who won the 2018 football World Cup?",
    ]
    assert main(["ask", "--json", *questions]) == 0
    english, french, football = _json_lines(capsys.readouterr().out)
    for answer, question in zip((english, french), questions, strict=False):
        assert answer["question"] == question and answer["answered"] is True
        first = answer["citations"][0]
        assert SEED_QUOTE in first["quote"] and "Peskov" in first["quote"]
        assert (first["source"], first["date"], first["n"]) == ("ATS", "2023-09", 1)
        assert set(first) == {
            "n", "article_id", "title", "source", "date", "url", "quote", "score", "story"
        }  # fmt: skip
        assert first["story"]["sources"] == ["ATS"] and first["story"]["languages"] == ["fr"]
        # An article may be quoted more than once (close runners-up), never the same quote.
        assert len({c["quote"] for c in answer["citations"]}) == len(answer["citations"])
    assert football["answered"] is False and football["citations"] == []
    text = (env / "articles" / "000_15beeeafbb7eb3ba.txt").read_text(encoding="utf-8")
    assert english["citations"][0]["quote"] in text  # verbatim


def test_ask_reads_questions_from_a_file_and_prints_text(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["ingest", str(env / "articles")])
    questions = tmp_path / "q.txt"
    questions.write_text("who denied signing an accord?\n\nQui a nié la signature d'un accord ?\n")
    capsys.readouterr()
    assert main(["ask", "--file", str(questions)]) == 0
    out = capsys.readouterr().out
    assert out.count("Q: ") == 2 and out.count(SEED_QUOTE) == 2 and "ATS, 2023-09" in out
    assert out.count("Story: 1 source, 1 language, Sept 2023") == 2


def test_second_ingest_embeds_nothing_and_stats_json(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["ingest", str(env / "articles")])
    capsys.readouterr()
    main(["ingest", str(env / "articles")])
    assert "0 added, 0 updated, 1 unchanged; 0 passages, 0 embedded" in capsys.readouterr().out
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == {"articles", "passages", "sources", "model", "last_update"}
    assert stats["articles"] == 1 and stats["passages"] >= 4 and stats["sources"] == 1
    assert "e5" in stats["model"] and stats["last_update"]


def test_bad_input_gets_a_clear_message(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "anything"]) == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "newsbot ingest" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["ingest", str(bad), str(env / "articles")]) == 0
    captured = capsys.readouterr()
    assert "bad.json" in captured.err and "1 added" in captured.out
    assert main(["ask", "x" * 1001]) == 2
    assert "limit is 1000" in capsys.readouterr().err
    assert main(["ask", "   "]) == 2
    assert "at least one question" in capsys.readouterr().err


def test_model_mismatch_is_refused_with_advice_to_reindex(
    env: Path, capsys: pytest.CaptureFixture[str], embedder
) -> None:  # type: ignore[no-untyped-def]
    from index.store import Store

    Store(env / "store", "some-other-model", embedder.dim).close()
    assert main(["ask", "who denied signing an accord?"]) == 2
    assert "newsbot reindex" in capsys.readouterr().err
    assert main(["reindex"]) == 0
    capsys.readouterr()
    assert main(["ask", "--json", "who denied signing an accord?"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["answered"] is True


def test_remove_takes_an_article_out_and_says_what_it_could_not_find(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(env / "articles")]) == 0
    assert main(["ask", "--json", "who denied signing an accord?"]) == 0
    (before,) = _json_lines(capsys.readouterr().out)
    article_id = before["citations"][0]["article_id"]

    with rebuild_lock(env):  # a reindex running elsewhere would bring it back: refused
        assert main(["remove", article_id]) == 2
    assert "a reindex of this data directory is already running" in capsys.readouterr().err
    assert main(["remove", article_id, "https://nowhere.test/x"]) == 1
    captured = capsys.readouterr()
    assert f"removed {article_id}: " in captured.out and "(ATS, 2023-09)" in captured.out
    assert "no indexed article has the id or link 'https://nowhere.test/x'" in captured.err
    assert main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["articles"] == 0
    assert main(["remove", article_id]) == 1  # gone already


def test_questions_with_undecodable_bytes_or_controls_are_cleaned_not_fatal(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`newsbot ask $'\\xff\\xfe who…'`: Python hands the bytes over as lone surrogates
    (surrogateescape), which the tokenizer and SQLite refuse; they become U+FFFD."""
    assert main(["ingest", str(env / "articles")]) == 0
    questions = tmp_path / "q.txt"
    questions.write_bytes(b"\x01\x02\nwho denied \x00signing an accord?\xff\n\x00\n")
    capsys.readouterr()
    asked = "\udcff\udcfe who denied signing an accord?"
    assert main(["ask", "--json", asked, "--file", str(questions)]) == 0
    first, second = _json_lines(capsys.readouterr().out)
    assert first["question"] == "\ufffd\ufffd who denied signing an accord?"
    assert second["question"] == "who denied signing an accord?\ufffd"
    assert first["answered"] and second["answered"]
    assert SEED_QUOTE in first["citations"][0]["quote"]
    assert main(["ask", "\x01\x02 \x7f"]) == 2
    assert "give at least one question" in capsys.readouterr().err


def test_since_and_until_take_dates_or_days_ago_and_refuse_the_rest(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parse = build_parser().parse_args
    today = datetime.date.today()
    args = parse(["ask", "q", "--since", "2024", "--until", "2024-02-29"])
    assert (args.since, args.until) == ("2024", "2024-02-29")
    args = parse(["ask", "q", "--since", "yesterday", "--until", "Today"])
    assert (args.since, args.until) == (str(today - datetime.timedelta(days=1)), str(today))
    assert parse(["ask", "q", "--since", "7d"]).since == str(today - datetime.timedelta(days=7))
    forms = "use YYYY, YYYY-MM or YYYY-MM-DD, or today, yesterday or Nd (N days ago)"
    for flag, value, message in [
        ("--since", "2024-13", "2024-13: month 13 is out of range; " + forms),
        ("--until", "2023-02-29", "2023-02-29: day 29 is out of range for 2023-02; " + forms),
        ("--since", "2024-00-10", "2024-00-10: month 0 is out of range"),
        ("--since", "last week", "'last week' is not a date; " + forms),
        ("--since", "2024-3", "'2024-3' is not a date"),
        ("--until", "2024-03-05T10:00", "'2024-03-05T10:00' is not a date"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            main(["ask", flag, value, "who denied signing an accord?"])
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: {message}" in err, err

    assert main(["ingest", str(env / "articles")]) == 0
    question = "who denied signing an accord?"
    assert main(["ask", "--json", "--since", "2023-09", "--until", "2023", question]) == 0
    assert main(["ask", "--json", "--since", "30d", question]) == 0
    dated, recent = _json_lines(capsys.readouterr().out)
    assert dated["answered"] is True and recent["answered"] is False  # the seed is 2023-09


def test_poll_ingests_a_feed_whose_item_holds_a_lone_surrogate(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`&#xD800;` in a feed item made feedparser raise and `newsbot poll` lose the round."""
    item = (
        "<item><guid>{guid}</guid><link>https://wire.test/{guid}</link><title>{title}</title>"
        "<description>{text}</description>"
        "<pubDate>Mon, 02 Sep 2024 10:00:00 +0000</pubDate></item>"
    )
    channel = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>{name}</title><link>https://wire.test/</link>{items}</channel></rss>"
    )
    hostile = channel.format(
        name="Hostile Wire",
        items=item.format(
            guid="storm",
            title="Storm &#xD800; closes the harbour of Portville",
            text="A storm &#xD800; closed the harbour of Portville for three days.",
        )
        + item.format(
            guid="ferry",
            title="Ferry service resumes",
            text="The first ferry left Portville at noon with two hundred passengers.",
        ),
    )
    other = channel.format(
        name="Other Wire",
        items=item.format(
            guid="bridge",
            title="Bridge closed for repairs",
            text="The old bridge of Portville is closed for repairs until the end of May.",
        ),
    )
    with serve() as server:
        feeds = [
            server.add("/hostile.rss", hostile, "application/rss+xml"),
            server.add("/other.rss", other, "application/rss+xml"),
        ]
        monkeypatch.setenv("NEWSBOT_FEEDS", json.dumps(feeds))
        monkeypatch.setenv("NEWSBOT_ALLOW_PRIVATE_FEEDS", "true")
        monkeypatch.setenv("NEWSBOT_FETCH_PAGES", "false")
        assert main(["poll"]) == 0
    captured = capsys.readouterr()
    assert "2 feeds polled (0 unchanged, 0 failed): 3 new items, 3 articles added" in captured.out
    assert main(["ask", "--json", "Which harbour did the storm close?"]) == 0
    (answer,) = _json_lines(capsys.readouterr().out)
    assert answer["answered"] is True
    assert answer["citations"][0]["title"] == "Storm \ufffd closes the harbour of Portville"


def test_the_embedder_setting_reaches_the_command_line(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSBOT_EMBEDDER", "onnx-int8")
    assert main(["ingest", str(env / "articles")]) == 0
    assert main(["stats", "--json"]) == 0
    stats = _json_lines(capsys.readouterr().out)[-1]
    assert stats["model"].endswith(":onnx-int8")
    assert main(["ask", "--json", "who denied signing an accord?"]) == 0
    answer = _json_lines(capsys.readouterr().out)[-1]
    assert answer["answered"] and SEED_QUOTE in answer["citations"][0]["quote"]
    monkeypatch.setenv("NEWSBOT_EMBEDDER", "torch")  # an index of another backend is refused
    assert main(["ask", "who denied signing an accord?"]) == 2
    assert "newsbot reindex" in capsys.readouterr().err


def test_poll_and_reindex_keep_the_bots_state_in_postgresql_when_a_database_is_set(
    env: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.alerts import WATERMARK
    from bot.state.postgres import PostgresState

    feed = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Wire</title>'
        "<link>https://wire.test/</link><item><guid>dam</guid><link>https://wire.test/dam</link>"
        "<title>Dam opens</title><description>The new dam on the Rhone opened on Monday after "
        "four years of works.</description><pubDate>Mon, 02 Sep 2024 10:00:00 +0000</pubDate>"
        "</item></channel></rss>"
    )
    monkeypatch.setenv("NEWSBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSBOT_ALLOW_PRIVATE_FEEDS", "true")
    monkeypatch.setenv("NEWSBOT_FETCH_PAGES", "false")
    with serve() as server:
        url = server.add("/wire.rss", feed, "application/rss+xml")
        monkeypatch.setenv("NEWSBOT_FEEDS", json.dumps([url]))
        assert main(["poll"]) == 0
    before_reindex = time.time()
    assert main(["reindex"]) == 0
    assert not (env / "state.sqlite3").exists()
    state = PostgresState(database_url)
    try:
        (record,) = state.feeds()
        assert (record.url, record.articles, record.last_error) == (url, 1, None)
        assert float(state.get(WATERMARK) or 0) >= before_reindex  # no story is new after it
    finally:
        state.close()

    capsys.readouterr()
    monkeypatch.setenv("NEWSBOT_DATABASE_URL", "postgresql://newsbot:s3cret@127.0.0.1:1/news")
    assert main(["poll"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("newsbot: cannot connect to the database at newsbot@127.0.0.1:1/news")
    assert "s3cret" not in err and err.count("\n") == 1


def test_reindex_waits_for_a_bots_round_and_moves_the_watermark_after_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`newsbot reindex` takes the bot's feed-poll-and-alert round as /reindex does: while a
    bot process holds it, the rebuild waits (a poll would write into the index being
    replaced); it then holds the round itself, moves the watermark past the rebuilt stories
    and gives the round up."""
    from bot.alerts import WATERMARK
    from bot.config import Settings
    from bot.jobs import NEWS
    from bot.state import open_state

    assert main(["ingest", str(env / "articles")]) == 0
    bot = open_state(Settings(_env_file=None, data_dir=env))  # a bot in its round
    try:
        assert bot.acquire_job(NEWS, 2.0)
        lease = bot.job_lease(NEWS)
        assert lease is not None and lease.holder == bot.holder
        assert main(["reindex"]) == 0
        assert "waiting for the bot's feed poll and alert round" in capsys.readouterr().err
        # The bot's lease ran out before the rebuild took the round, and the rebuild gave it
        # up when done; the watermark was moved after the rebuild.
        assert bot.job_lease(NEWS) is None
        assert float(bot.get(WATERMARK) or 0) >= lease.expires_at
    finally:
        bot.close()
