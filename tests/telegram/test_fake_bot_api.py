"""The fake Bot API server itself: over raw HTTP, with telegram.Bot, and with an Application."""

from __future__ import annotations

import asyncio
import datetime as dtm
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from telegram import Bot, BotCommandScopeChatAdministrators, ReplyParameters, Update
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, RetryAfter
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from .fake_bot_api import FakeBotAPI, utf16_len

EMOJI = "😀"  # one code point, two UTF-16 code units


def with_bot(fake: FakeBotAPI, body: Callable[[Bot], Awaitable[Any]]) -> Any:
    """Run ``body(bot)`` with an initialised telegram.Bot pointed at the fake."""

    async def main() -> Any:
        bot = Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)
        async with bot:
            return await body(bot)

    return asyncio.run(main())


def api(fake: FakeBotAPI, method: str, **params: Any) -> httpx.Response:
    return httpx.post(f"{fake.url}/bot{fake.token}/{method}", json=params, timeout=10)


# ----------------------------------------------------------------------------- raw HTTP


def test_get_me_answers_json_form_and_get(fake_api: FakeBotAPI) -> None:
    as_json = api(fake_api, "getMe").json()
    as_form = httpx.post(f"{fake_api.url}/bot{fake_api.token}/getMe", data={"x": "1"}).json()
    as_get = httpx.get(f"{fake_api.url}/bot{fake_api.token}/getme").json()

    assert as_json == as_form == as_get
    assert as_json["ok"] is True
    assert as_json["result"]["username"] == "NewsTestBot"
    assert as_json["result"]["is_bot"] is True
    assert as_json["result"]["id"] == 123456


def test_wrong_token_and_unknown_method(fake_api: FakeBotAPI) -> None:
    wrong = httpx.post(f"{fake_api.url}/bot999:NOPE/getMe")
    unknown = api(fake_api, "sendTelepathy")

    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


def test_form_encoded_values_are_typed_like_telegram_reads_them(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))
    answer = httpx.post(
        f"{fake_api.url}/bot{fake_api.token}/sendMessage",
        data={
            "chat_id": str(chat["id"]),
            "text": "123",
            "link_preview_options": '{"is_disabled": true}',
        },
    ).json()

    assert answer["result"]["text"] == "123"
    (sent,) = fake_api.sent_messages(chat)
    assert sent.link_preview_options == {"is_disabled": True}
    assert fake_api.calls("sendMessage")[0].params["chat_id"] == chat["id"]


def test_multipart_form_as_sent_with_files(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))
    answer = httpx.post(
        f"{fake_api.url}/bot{fake_api.token}/sendMessage",
        data={"chat_id": str(chat["id"]), "text": "<i>multi</i>", "parse_mode": "HTML"},
        files={"unused": ("a.txt", b"bytes")},
    ).json()

    assert answer["result"]["text"] == "multi"
    assert fake_api.calls("sendMessage")[0].params["unused"] == b"bytes"


def test_long_polling_blocks_until_an_update_arrives(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(user := fake_api.user("Ann"))
    answers: list[dict[str, Any]] = []
    poller = threading.Thread(
        target=lambda: answers.append(api(fake_api, "getUpdates", timeout=5).json())
    )
    poller.start()
    poller.join(0.3)
    assert poller.is_alive(), "getUpdates returned before any update existed"

    message = fake_api.user_says(chat, user, "hello")
    poller.join(5)

    (update,) = answers[0]["result"]
    assert update["message"] == message
    again = api(fake_api, "getUpdates", offset=update["update_id"]).json()["result"]
    confirmed = api(fake_api, "getUpdates", offset=update["update_id"] + 1).json()["result"]
    assert [u["update_id"] for u in again] == [update["update_id"]]
    assert confirmed == []


def test_get_updates_limit_and_allowed_updates(fake_api: FakeBotAPI) -> None:
    user = fake_api.user("Ann")
    chat = fake_api.private_chat(user)
    for text in ("one", "two", "three"):
        fake_api.user_says(chat, user, text)
    fake_api.channel_post(fake_api.channel("News"), "posted")

    first_two = api(fake_api, "getUpdates", limit=2).json()["result"]
    only_posts = api(fake_api, "getUpdates", allowed_updates=["channel_post"]).json()["result"]

    assert [u["message"]["text"] for u in first_two] == ["one", "two"]
    assert [u["channel_post"]["text"] for u in only_posts] == ["posted"]


# ----------------------------------------------------------------------------- telegram.Bot


def test_bot_get_me(fake_api: FakeBotAPI) -> None:
    me = with_bot(fake_api, lambda bot: bot.get_me())

    assert (me.id, me.username, me.is_bot) == (123456, "NewsTestBot", True)


def test_html_with_allowed_tags_is_parsed_into_entities(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))

    message = with_bot(
        fake_api, lambda bot: bot.send_message(chat["id"], "<b>ok</b> &amp;", parse_mode="HTML")
    )

    assert message.text == "ok &"
    (sent,) = fake_api.sent_messages(chat)
    assert sent.raw_text == "<b>ok</b> &amp;"
    assert sent.entities == [{"offset": 0, "length": 2, "type": "bold"}]
    assert sent.message["from"]["is_bot"] is True


def test_parse_error_wording_and_ampersands(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))

    refused = api(fake_api, "sendMessage", chat_id=chat["id"], text="x <br>", parse_mode="HTML")
    kept = api(fake_api, "sendMessage", chat_id=chat["id"], text="AT&T &lt", parse_mode="HTML")

    assert refused.status_code == 400
    assert refused.json()["description"] == (
        'Bad Request: can\'t parse entities: Unsupported start tag "br" at byte offset 2'
    )
    assert kept.json()["result"]["text"] == "AT&T <"  # Telegram keeps a lone '&' as is
    with FakeBotAPI(strict_ampersand=True) as strict:
        chat = strict.private_chat(strict.user("Ann"))
        answer = api(strict, "sendMessage", chat_id=chat["id"], text="AT&T", parse_mode="HTML")
        assert answer.json()["description"].startswith("Bad Request: can't parse entities: ")


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<script>alert(1)</script>", 'unsupported start tag "script" at byte offset 0'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
        ("<b>bold <i>both</b></i>", 'unmatched end tag at byte offset 15, expected "</i>"'),
        ("<b>never closed", "can't find end tag corresponding to start tag b"),
    ],
)
def test_html_that_telegram_refuses_raises_bad_request(
    fake_api: FakeBotAPI, html: str, reason: str
) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))

    with pytest.raises(BadRequest) as caught:
        with_bot(fake_api, lambda bot: bot.send_message(chat["id"], html, parse_mode="HTML"))

    assert caught.value.message.lower().startswith("can't parse entities: ")
    assert reason in caught.value.message.lower()
    assert fake_api.sent_messages(chat) == []


def test_length_limit_counts_utf16_units_of_the_visible_text(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))
    longest = EMOJI * 2048  # 2048 characters, 4096 UTF-16 code units
    assert utf16_len(longest) == 4096

    async def send(bot: Bot) -> None:
        await bot.send_message(chat["id"], f"<b>{longest}</b>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(chat["id"], longest + "a")
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(chat["id"], f"<i>{longest}&amp;</i>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(chat["id"], "<b> </b>\n", parse_mode="HTML")

    with_bot(fake_api, send)
    (sent,) = fake_api.sent_messages(chat)
    assert sent.text == longest
    assert sent.entities == [{"offset": 0, "length": 4096, "type": "bold"}]


def test_flood_control_raises_retry_after(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))
    fake_api.fail_next("sendMessage", count=1, retry_after=3)

    async def send(bot: Bot) -> None:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(chat["id"], "first try")
        assert caught.value.retry_after in (3, dtm.timedelta(seconds=3))
        await bot.send_message(chat["id"], "second try")

    with_bot(fake_api, send)
    assert [c.status for c in fake_api.calls("sendMessage")] == [429, 200]
    assert fake_api.calls("sendMessage")[0].response["parameters"] == {"retry_after": 3}
    assert [m.text for m in fake_api.sent_messages(chat)] == ["second try"]


def test_automatic_flood_limit_per_chat(fake_api: FakeBotAPI) -> None:
    chat = fake_api.private_chat(fake_api.user("Ann"))
    other = fake_api.private_chat(fake_api.user("Bob"))
    fake_api.set_flood_limit(per_chat_per_second=2, retry_after=5)

    async def send(bot: Bot) -> None:
        await bot.send_message(chat["id"], "1")
        await bot.send_message(chat["id"], "2")
        await bot.send_message(other["id"], "elsewhere")
        with pytest.raises(RetryAfter):
            await bot.send_message(chat["id"], "3")

    with_bot(fake_api, send)


def test_long_polling_through_bot_and_offsets_confirm(fake_api: FakeBotAPI) -> None:
    user = fake_api.user("Ann")
    chat = fake_api.private_chat(user)

    async def poll(bot: Bot) -> tuple[Any, Any]:
        waiting = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.2)
        fake_api.user_says(chat, user, "/ask who denied it?")
        (update,) = await waiting
        later = await bot.get_updates(offset=update.update_id + 1, timeout=0)
        return update, later

    update, later = with_bot(fake_api, poll)
    assert update.message.text == "/ask who denied it?"
    assert update.message.from_user.id == user["id"]
    assert later == ()
    assert fake_api.pending_updates() == []


def test_errors_the_real_server_gives(fake_api: FakeBotAPI) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)
    blocked = fake_api.private_chat(fake_api.user("Bob"))
    fake_api.block(blocked)

    async def scenario(bot: Bot) -> None:
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(424242, "hi")
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(blocked["id"], "hi")
        with pytest.raises(BadRequest, match="Message to be replied not found"):
            await bot.send_message(chat["id"], "hi", reply_parameters=ReplyParameters(999))
        sent = await bot.send_message(
            chat["id"],
            "hi",
            reply_parameters=ReplyParameters(999, allow_sending_without_reply=True),
        )
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_text("hi", chat["id"], sent.message_id)
        await bot.edit_message_text("<i>hello</i>", chat["id"], sent.message_id, parse_mode="HTML")
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", chat["id"], 999)
        assert await bot.delete_message(chat["id"], sent.message_id)
        with pytest.raises(BadRequest, match="Message to delete not found"):
            await bot.delete_message(chat["id"], sent.message_id)

    with_bot(fake_api, scenario)
    assert fake_api.sent_messages(chat) == []
    (deleted,) = fake_api.sent_messages(chat, include_deleted=True)
    assert (deleted.text, deleted.edits, deleted.deleted) == ("hello", ["hi"], True)


def test_replies_and_forum_topics(fake_api: FakeBotAPI) -> None:
    ann = fake_api.user("Ann")
    forum = fake_api.group("Newsroom", forum=True)
    topic = fake_api.create_topic(forum, "Ukraine", by=ann)
    question = fake_api.user_says(forum, ann, "/ask what happened?", thread_id=topic)

    async def reply(bot: Bot) -> None:
        await bot.send_message(
            forum["id"], "answer", reply_parameters=ReplyParameters(question["message_id"])
        )
        with pytest.raises(BadRequest, match="Message thread not found"):
            await bot.send_message(forum["id"], "lost", message_thread_id=999)

    with_bot(fake_api, reply)
    (answer,) = fake_api.sent_messages(forum)
    assert (answer.reply_to, answer.thread_id) == (question["message_id"], topic)
    assert answer.message["is_topic_message"] is True
    assert question["reply_to_message"]["forum_topic_created"] == {
        "name": "Ukraine",
        "icon_color": 7322096,
    }


def test_commands_menu_is_validated_and_kept_per_scope(fake_api: FakeBotAPI) -> None:
    group = fake_api.group("Readers")

    async def menus(bot: Bot) -> None:
        await bot.set_my_commands([("ask", "Ask about the news"), ("help", "How to use me")])
        await bot.set_my_commands(
            [("subscribe", "Alerts for a topic")],
            scope=BotCommandScopeChatAdministrators(group["id"]),
        )
        with pytest.raises(BadRequest, match="Bot_command_invalid"):
            await bot.set_my_commands([("Ask", "Upper case is refused")])
        with pytest.raises(BadRequest, match="Command description must be non-empty"):
            await bot.set_my_commands([("ask", " ")])
        assert [c.command for c in await bot.get_my_commands()] == ["ask", "help"]

    with_bot(fake_api, menus)
    admins = {"type": "chat_administrators", "chat_id": group["id"]}
    assert fake_api.commands(admins) == [
        {"command": "subscribe", "description": "Alerts for a topic"}
    ]


def test_webhook_chat_actions_and_callback_answers(fake_api: FakeBotAPI) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def scenario(bot: Bot) -> str:
        await bot.set_webhook("https://bot.example.org/hook", secret_token="s3cret")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        info = await bot.get_webhook_info()
        await bot.delete_webhook()
        await bot.send_chat_action(chat["id"], "typing")
        sent = await bot.send_message(chat["id"], "pick one")
        query_id = fake_api.press_button(chat, ann, sent.message_id, "more")
        await bot.answer_callback_query(query_id, text="Loading")
        return info.url

    assert with_bot(fake_api, scenario) == "https://bot.example.org/hook"
    assert fake_api.webhook == {}
    assert fake_api.chat_actions(chat) == [(chat["id"], "typing", None)]
    assert fake_api.pending_updates()[0]["callback_query"]["data"] == "more"
    answered = [c.params for c in fake_api.calls("answerCallbackQuery")]
    assert answered[0]["text"] == "Loading"


def test_chat_members_and_admins(fake_api: FakeBotAPI) -> None:
    owner, reader = fake_api.user("Owner"), fake_api.user("Reader")
    group = fake_api.group("Readers", supergroup=True)
    fake_api.set_admins(group, [], creator=owner)
    fake_api.user_says(group, reader, "/ask hi")

    async def check(bot: Bot) -> tuple[Any, ...]:
        return (
            await bot.get_chat_member(group["id"], owner["id"]),
            await bot.get_chat_member(group["id"], reader["id"]),
            await bot.get_chat_administrators(group["id"]),
            await bot.get_chat(group["id"]),
        )

    owner_member, reader_member, admins, full = with_bot(fake_api, check)
    assert (owner_member.status, reader_member.status) == ("creator", "member")
    assert [a.user.id for a in admins] == [owner["id"]]
    assert (full.title, full.type) == ("Readers", "supergroup")


# ----------------------------------------------------------------------------- updates built


def test_command_and_mention_entities_in_utf16(fake_api: FakeBotAPI) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    command = fake_api.user_says(chat, ann, "/ask@NewsTestBot hi")
    mention = fake_api.user_says(chat, ann, f"{EMOJI} @NewsTestBot who?")

    assert command["entities"] == [{"offset": 0, "length": 16, "type": "bot_command"}]
    assert mention["entities"] == [{"offset": 3, "length": 12, "type": "mention"}]
    message = Update.de_json(fake_api.pending_updates()[0], None).message
    assert message is not None
    assert message.parse_entities() == {message.entities[0]: "/ask@NewsTestBot"}


def test_group_privacy_mode_filters_what_the_bot_receives(fake_api: FakeBotAPI) -> None:
    ann = fake_api.user("Ann")
    group = fake_api.group("Readers")

    fake_api.user_says(group, ann, "just chatting")
    fake_api.user_says(group, ann, "/ask@OtherBot not for us")
    asked = fake_api.user_says(group, ann, "/ask who?")
    mentioned = fake_api.user_says(group, ann, "hey @NewsTestBot, who?")
    reply = fake_api.user_says(group, ann, "thanks")  # queued once the bot is promoted
    fake_api.set_admins(group, [], bot_is_admin=True)
    promoted = fake_api.user_says(group, ann, "now everything", reply_to=reply)

    delivered = [u["message"]["message_id"] for u in fake_api.pending_updates()]
    assert delivered == [asked["message_id"], mentioned["message_id"], promoted["message_id"]]


def test_my_chat_member_and_kicked_bot(fake_api: FakeBotAPI) -> None:
    owner = fake_api.user("Owner")
    group = fake_api.group("Readers", supergroup=True)
    update = fake_api.my_chat_member(group, "kicked", by=owner)

    assert update["my_chat_member"]["old_chat_member"]["status"] == "member"
    assert update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    parsed = Update.de_json(update, None)
    assert parsed.my_chat_member is not None
    with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
        with_bot(fake_api, lambda bot: bot.send_message(group["id"], "hello?"))


def test_a_group_upgraded_to_a_supergroup_moves_and_old_id_refuses(
    fake_api: FakeBotAPI,
) -> None:
    owner = fake_api.user("Owner")
    group = fake_api.group("Readers")
    new = fake_api.upgrade_to_supergroup(group, by=owner)

    assert new["type"] == "supergroup" and new["id"] != group["id"]
    updates = api(fake_api, "getUpdates").json()["result"]
    messages = [u["message"] for u in updates]
    seen = [
        (m["chat"]["id"], m.get("migrate_to_chat_id"), m.get("migrate_from_chat_id"))
        for m in messages
    ]
    assert seen == [(group["id"], new["id"], None), (new["id"], None, group["id"])]
    with pytest.raises(ChatMigrated) as raised:
        with_bot(fake_api, lambda bot: bot.send_message(group["id"], "hello?"))
    assert raised.value.new_chat_id == new["id"]
    sent = with_bot(fake_api, lambda bot: bot.send_message(new["id"], "hello"))
    assert sent.chat.type == "supergroup"


def test_wait_for_times_out_with_recent_calls(fake_api: FakeBotAPI) -> None:
    api(fake_api, "sendMessage", chat_id=1, text="nobody")

    with pytest.raises(AssertionError) as caught:
        fake_api.wait_for(lambda: fake_api.sent_messages(), timeout=0.2, what="a reply")

    report = str(caught.value)
    assert "waiting for a reply" in report
    assert "sendMessage" in report and "Bad Request: chat not found" in report


# ----------------------------------------------------------------------------- Application


def test_application_polling_answers_start(fake_api: FakeBotAPI) -> None:
    ann = fake_api.user("Ann")
    chat = fake_api.private_chat(ann)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_html("<b>Welcome!</b> Ask me about the news.")

    async def main() -> None:
        app = (
            ApplicationBuilder()
            .token(fake_api.token)
            .base_url(fake_api.base_url)
            .base_file_url(fake_api.base_file_url)
            .build()
        )
        app.add_handler(CommandHandler("start", start))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            fake_api.user_says(chat, ann, "/start")
            (reply,) = await fake_api.wait_for_messages_async(chat, count=1, timeout=10)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
        assert reply.text == "Welcome! Ask me about the news."
        assert reply.entities == [{"offset": 0, "length": 8, "type": "bold"}]
        assert reply.reply_to is None

    asyncio.run(main())
    assert fake_api.pending_updates() == []
    assert "deleteWebhook" in {c.method for c in fake_api.calls()}
