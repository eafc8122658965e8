"""Digests and timelines without Telegram: reading `/digest daily`, when a daily digest is
due (time zones, daylight saving), reading "what happened since …", and messages that stay
within Telegram's limit however many stories there are."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.answer import Citation
from bot.digest import DigestItem, DigestUsage, due_day, parse_daily, render_digest
from bot.render import message_units
from bot.state import DigestSchedule
from bot.timeline import Timeline, TimelineRequest, render_timeline, timeline_request


def test_a_daily_time_and_time_zone_are_read_and_checked() -> None:
    assert parse_daily(["08:00"]) == ("08:00", "UTC")
    assert parse_daily(["7:05", "europe/paris"]) == ("07:05", "Europe/Paris")
    assert parse_daily(["21h30", "America/New_York"]) == ("21:30", "America/New_York")
    assert parse_daily(["23:59", "gmt"]) == ("23:59", "UTC")
    for words, key in (
        ([], "digest_usage"),
        (["08:00", "Europe/Paris", "extra"], "digest_usage"),
        (["24:00"], "digest_bad_time"),
        (["8"], "digest_bad_time"),
        (["08:60"], "digest_bad_time"),
        (["08:00", "Mars/Olympus_Mons"], "digest_bad_zone"),
        (["08:00", "../../etc/passwd"], "digest_bad_zone"),
        (["08:00", "+02:00"], "digest_bad_zone"),
    ):
        with pytest.raises(DigestUsage) as refused:
            parse_daily(words)
        assert refused.value.key == key, words


def schedule(at: str, zone: str, last_day: str | None = None) -> DigestSchedule:
    return DigestSchedule(1, "private", at, zone, "en", None, last_day)


def test_a_daily_digest_is_due_from_its_local_time_once_a_day() -> None:
    paris = schedule("08:00", "Europe/Paris")
    winter = datetime(2026, 1, 15, 6, 59, tzinfo=UTC)  # 07:59 in Paris (UTC+1)
    assert due_day(paris, winter) is None
    assert due_day(paris, winter.replace(minute=0, hour=7)) == "2026-01-15"
    summer = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)  # 08:00 in Paris (UTC+2)
    assert due_day(paris, summer) == "2026-07-15"
    assert due_day(schedule("08:00", "Europe/Paris", "2026-07-15"), summer) is None
    # Late in the evening in New York it is already tomorrow in UTC: the local day counts.
    evening = datetime(2026, 3, 3, 2, 30, tzinfo=UTC)  # 21:30 on 2 March in New York
    assert due_day(schedule("21:00", "America/New_York"), evening) == "2026-03-02"
    assert due_day(schedule("21:00", "UTC"), evening) is None
    # The spring-forward gap (02:00-03:00 does not exist in Paris on 29 March 2026).
    jumped = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert due_day(schedule("02:30", "Europe/Paris"), jumped) == "2026-03-29"
    assert due_day(DigestSchedule(1, "private", None, "UTC", None, None, None), summer) is None


def test_what_happened_since_is_read_in_english_and_french() -> None:
    cases = {
        "what happened in Iceland since July 10, 2024?": ("Iceland", "2024-07-10"),
        "What has happened since the eruption near Grindavik?": (
            "the eruption near Grindavik",
            None,
        ),
        "what happened since 2024-07 with the volcano": ("volcano", "2024-07"),
        "what's happened to the Kremlin since September 2023": ("the Kremlin", "2023-09"),
        "Que s'est-il passé en Islande depuis le 10 juillet 2024 ?": ("Islande", "2024-07-10"),
        "qu’est-ce qui s’est passé avec le Kremlin depuis septembre 2023": (
            "le Kremlin",
            "2023-09",
        ),
        "que s'est-il passé depuis l'éruption ?": ("l'éruption", None),
        "what happened since July 2024 in Iceland": ("Iceland", "2024-07"),
        "Que s'est-il passé depuis le 10 juillet 2024 en Islande ?": ("Islande", "2024-07-10"),
    }
    for text, (topic, since) in cases.items():
        assert timeline_request(text) == TimelineRequest(topic, since), text
    for other in ("what happened?", "what happened since July 2024?", "who denied the accord?"):
        assert timeline_request(other) is None, other


def citation(n: int, quote: str, date: str | None = "2024-07-10") -> Citation:
    return Citation(
        n=n,
        article_id=f"a{n}",
        title=f"Story <{n}> & more",
        source="Wire",
        date=date,
        url=f"https://news.example/{n}",
        quote=quote,
        score=0.5,
    )


def test_a_long_digest_is_split_between_stories_within_the_limit() -> None:
    long_quote = "Lava poured out of the fissure near the town " * 40  # ~1,800 characters
    items = [
        DigestItem("volcanoes" if n % 2 else "floods & <rain>", citation(n, long_quote), 0.9)
        for n in range(1, 11)
    ]
    messages = render_digest(items, "2026-12-02 08:00 UTC", "en")
    assert len(messages) > 1
    assert all(message_units(m) <= 4096 for m in messages)
    joined = "".join(messages)
    assert joined.count("<blockquote>") == 10 and "floods &amp; &lt;rain&gt;" in joined
    numbers = [int(n) for n in re.findall(r"<b>(\d+)\.</b>", joined)]
    assert numbers == list(range(1, 11))
    assert messages[0].startswith("📰 <b>Digest</b>: 10 new stories")
    # Each topic's heading comes once, with its first story (never alone at a message's end).
    assert joined.count("🔖 <b>volcanoes</b>") == 1
    assert all(not m.rstrip().endswith("</b>") for m in messages)


def test_a_long_timeline_is_split_between_entries_and_undated_ones_come_last() -> None:
    long_quote = "Les pompiers ont évacué des centaines de personnes " * 30
    dated = [citation(n, long_quote, f"2024-07-{n:02d}") for n in range(1, 9)]
    undated = [citation(9, "Sans date.", None)]
    messages = render_timeline(Timeline("crue", "2024-07-01", dated, undated), "fr")
    assert len(messages) > 1 and all(message_units(m) <= 4096 for m in messages)
    joined = "".join(messages)
    assert messages[0].startswith("🕰 <b>crue</b> depuis le 2024-07-01")
    assert joined.index("Articles sans date") > joined.index("2024-07-08")
    assert joined.rstrip().endswith("<blockquote>Sans date.</blockquote>")


def test_a_time_zone_is_named_as_the_tz_database_names_it() -> None:
    assert ZoneInfo(parse_daily(["08:00", "asia/ho_chi_minh"])[1]).key == "Asia/Ho_Chi_Minh"


def test_a_time_zone_that_is_a_folder_or_too_long_is_refused_not_a_crash() -> None:
    # The tz database's folders ("Europe") and names longer than a file name can be are
    # no zones: the reader is told so, as for any unknown zone.
    for zone in ("Europe", "america", "Etc", "a" * 300, "Europe/" + "b" * 300):
        with pytest.raises(DigestUsage) as refused:
            parse_daily(["08:00", zone])
        assert refused.value.key == "digest_bad_zone", zone
    assert parse_daily(["08:00", "america/port-au-prince"])[1] == "America/Port-au-Prince"


def test_since_then_or_since_yesterday_names_no_story_to_tell() -> None:
    # "Since then", "since yesterday", "depuis ça": no topic and no date the index can place;
    # a timeline of "then" would tell nothing. Such a question is answered as a question
    # (or, as a reply to an answer, as a follow-up within its story).
    for text in (
        "what happened since then?",
        "What has happened since yesterday?",
        "what happened since last week?",
        "what happened since that?",
        "what happened since 🙂?",
        "what happened since the 10th?",
        "que s'est-il passé depuis ?",
        "qu'est-ce qui s'est passé depuis ça ?",
        "que s'est-il passé depuis la semaine dernière ?",
    ):
        assert timeline_request(text) is None, text
    # With a topic, the words after "since" that place nothing are left out of it.
    assert timeline_request("what happened in Iceland since then?") == TimelineRequest(
        "Iceland", None
    )
    assert timeline_request("Que s'est-il passé en Islande depuis hier ?") == TimelineRequest(
        "Islande", None
    )


def test_the_undated_heading_is_never_left_alone_at_the_end_of_a_message() -> None:
    # Two long dated entries nearly fill a message: the heading of the undated ones goes
    # with the first of them to the next message, not alone at the end of this one.
    quote = "Lava poured out of the fissure near the town " * 40  # ~1,800 characters
    dated = [citation(n, quote, f"2024-07-{n:02d}") for n in (1, 2)]
    undated = [citation(3, quote, None)]
    for lang, heading in (
        ("en", "<i>Undated articles:</i>"),
        ("fr", "<i>Articles sans date :</i>"),
    ):
        messages = render_timeline(Timeline("lava", None, dated, undated), lang)
        assert len(messages) == 2 and all(message_units(m) <= 4096 for m in messages)
        assert messages[1].startswith(heading + "\n\n<b>3.</b>")
