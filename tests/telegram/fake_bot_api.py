"""A fake Telegram Bot API server for end-to-end tests.

It serves the Bot API over real HTTP on 127.0.0.1 (an ephemeral port, a background thread),
so a real python-telegram-bot ``Bot`` or ``Application`` can be pointed at it. It keeps
users, chats and messages, and enforces the rules of the real server that a bot trips over:
HTML must parse with Telegram's tags (tdlib's parser and wording), text is limited to 4096
UTF-16 code units after parsing, flood control answers 429 with ``retry_after``, blocked
users answer 403, unknown chats and messages answer 400. Tests inject updates built as
Telegram builds them (command and mention entities in UTF-16 offsets, group privacy mode)
and inspect what the bot sent.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")
JSON = dict[str, Any]

MAX_MESSAGE_LENGTH = 4096
MAX_COMMANDS = 100
# Update kinds delivered when allowed_updates is empty or was never set (Bot API docs).
_NOT_DELIVERED_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
_CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
}  # fmt: skip
# Parameters that are always strings: never JSON-decode them (PTB sends them verbatim).
_STRING_PARAMS = {
    "text", "caption", "parse_mode", "url", "secret_token", "language_code", "action",
    "callback_query_id", "inline_message_id", "title", "description", "short_description",
    "name", "query", "emoji", "business_connection_id", "message_effect_id", "ip_address",
}  # fmt: skip
_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
    "can_delete_stories", "can_post_messages", "can_edit_messages", "can_pin_messages",
    "can_manage_topics",
)  # fmt: skip
_JSON_LITERAL = re.compile(r"-?\d+(\.\d+)?|true|false|null|[\[{].*", re.DOTALL)


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """A 400 answer worded like Telegram's ("Bad Request: ...")."""
    return ApiError(400, f"Bad Request: {reason}")


def too_many_requests(retry_after: int) -> ApiError:
    """A 429 flood-control answer, as PTB turns into ``telegram.error.RetryAfter``."""
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


# --------------------------------------------------------------------------- text rules


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_offsets(text: str) -> list[int]:
    """UTF-16 offset of every character index of ``text`` (and of its end)."""
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return offsets


class EntityParseError(ValueError):
    """HTML that Telegram refuses; the message is tdlib's wording."""


_HTML_TAGS = {
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji",
    "span", "pre", "code", "blockquote",
}  # fmt: skip
_SIMPLE_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler",
}  # fmt: skip
_HTML_SPACE = b" \t\r\n\v\f\x00"
_NAMED_ENTITIES = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}


def _decode_html_entity(data: bytes, pos: int) -> tuple[str, int] | None:
    """Decode the entity at ``data[pos] == '&'`` like tdlib; None leaves the '&' literal."""

    def at(k: int) -> int:
        return data[k] if k < len(data) else 0

    end = pos + 1
    if at(end) == ord("#"):
        end += 1
        value = 0
        if at(end) == ord("x"):
            end += 1
            while chr(at(end)) in "0123456789abcdefABCDEF" and at(end):
                value = value * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while chr(at(end)).isdigit() and at(end) < 128:
                value = value * 10 + at(end) - ord("0")
                end += 1
        if value == 0 or value >= 0x10FFFF or end - pos >= 10:
            return None
        char = chr(value)
    else:
        while at(end) < 128 and chr(at(end)).isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(data[pos + 1 : end])
        if named is None:
            return None
        char = named
    if at(end) == ord(";"):
        end += 1
    return char, end


def _check_url(url: str) -> str | None:
    """Normalise a link target as Telegram does; None when it is not a usable URL."""
    url = url.strip()
    lower = url.lower()
    if not url or any(ch.isspace() for ch in url):
        return None
    if lower.startswith(("tg:", "ton:", "mailto:")):
        return url
    if not re.match(r"^[a-z][a-z0-9+.-]*://", lower):
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https", "ftp") or "." not in (parts.hostname or ""):
        return None
    return url if parts.path else url.replace(parts.netloc, parts.netloc + "/", 1)


def parse_html(html: str, *, strict_ampersand: bool = False) -> tuple[str, list[JSON]]:
    """Parse Bot API HTML into (visible text, entities) exactly as tdlib does, or raise.

    Offsets in error messages are byte offsets into the UTF-8 text, as Telegram reports them.
    With ``strict_ampersand`` a ``&`` that starts no entity is refused (Telegram keeps it).
    """
    data = html.encode("utf-8", "surrogatepass")
    size = len(data)

    def at(k: int) -> int:
        return data[k] if k < size else 0

    out = bytearray()
    utf16 = 0
    entities: list[JSON] = []
    stack: list[tuple[str, str, int, int]] = []  # tag, argument, utf16 offset, output bytes
    i = 0
    while i < size:
        c = data[i]
        if c == ord("&"):
            decoded = _decode_html_entity(data, i)
            if decoded is not None:
                char, i = decoded
                out += char.encode("utf-8", "surrogatepass")
                utf16 += 2 if ord(char) > 0xFFFF else 1
                continue
            if strict_ampersand:
                raise EntityParseError(f'Unescaped "&" at byte offset {i}')
        if c != ord("<"):
            if c & 0xC0 != 0x80:
                utf16 += 2 if c >= 0xF0 else 1
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if at(i) != ord("/"):
            while at(i) not in _HTML_SPACE and at(i) != ord(">"):
                i += 1
            if at(i) == 0:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument, i = _parse_attributes(data, i, tag, begin)
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append((tag, argument, utf16, len(out)))
        else:
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
            while at(i) not in _HTML_SPACE and at(i) != ord(">"):
                i += 1
            end_tag = data[begin + 2 : i].decode("utf-8", "replace").lower()
            while at(i) != 0 and at(i) in _HTML_SPACE:
                i += 1
            if at(i) != ord(">"):
                raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
            tag, argument, start, start_byte = stack.pop()
            if end_tag and end_tag != tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                    f'found "</{end_tag}>"'
                )
            if utf16 > start:
                inner = bytes(out[start_byte:]).decode("utf-8", "replace")
                _close_entity(entities, tag, argument, start, utf16 - start, inner)
        i += 1  # past '>'
    if stack:
        raise EntityParseError(f"Can't find end tag corresponding to start tag {stack[-1][0]}")
    try:
        text = bytes(out).decode("utf-8")
    except UnicodeDecodeError:
        raise EntityParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        ) from None
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return text, entities


def _parse_attributes(data: bytes, i: int, tag: str, begin: int) -> tuple[str, int]:
    """Read a start tag's attributes from ``i``; return (tag argument, index of '>')."""

    def at(k: int) -> int:
        return data[k] if k < len(data) else 0

    argument = ""
    while at(i) != ord(">"):
        while at(i) != 0 and at(i) in _HTML_SPACE:
            i += 1
        if at(i) == ord(">"):
            break
        name_begin = i
        while at(i) not in _HTML_SPACE and at(i) not in (ord("="), ord(">")):
            i += 1
        name = data[name_begin:i].decode("utf-8", "replace").lower()
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
            )
        while at(i) != 0 and at(i) in _HTML_SPACE:
            i += 1
        if at(i) != ord("="):
            if tag == "blockquote" and name == "expandable" and at(i) != 0:
                argument = "expandable"
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {begin}"
            )
        i += 1
        while at(i) != 0 and at(i) in _HTML_SPACE:
            i += 1
        if at(i) == 0:
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if at(i) not in (ord("'"), ord('"')):
            token_begin = i
            while chr(at(i)).isascii() and (chr(at(i)).isalnum() or at(i) in b".-") and at(i):
                i += 1
            value = data[token_begin:i].decode("ascii").lower()
            if at(i) not in _HTML_SPACE and at(i) != ord(">"):
                raise EntityParseError(f"Unexpected end of name token at byte offset {token_begin}")
        else:
            quote = at(i)
            i += 1
            raw = bytearray()
            while at(i) != quote and at(i) != 0:
                decoded = _decode_html_entity(data, i) if at(i) == ord("&") else None
                if decoded is not None:
                    raw += decoded[0].encode("utf-8", "surrogatepass")
                    i = decoded[1]
                    continue
                raw.append(at(i))
                i += 1
            if at(i) == quote:
                i += 1
            value = raw.decode("utf-8", "replace")
        if at(i) == 0:
            raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
        if tag == "a" and name == "href":
            argument = value
        elif tag == "code" and name == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and name == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif tag == "tg-emoji" and name == "emoji-id":
            argument = value
    return argument, i


def _close_entity(
    entities: list[JSON], tag: str, argument: str, offset: int, length: int, inner: str
) -> None:
    """Append the entity a closed tag stands for (tdlib's rules for a, pre and code)."""
    entity: JSON = {"offset": offset, "length": length}
    last = entities[-1] if entities else None
    same_span = last is not None and (last["offset"], last["length"]) == (offset, length)
    if tag in _SIMPLE_TAGS:
        entity["type"] = _SIMPLE_TAGS[tag]
    elif tag == "blockquote":
        entity["type"] = "expandable_blockquote" if argument else "blockquote"
    elif tag == "tg-emoji":
        if not argument.isdigit() or int(argument) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entity.update(type="custom_emoji", custom_emoji_id=argument)
    elif tag == "a":
        target = argument or inner
        user = re.fullmatch(r"tg://user\?id=(\d+)", target)
        if user:
            entity.update(
                type="text_mention",
                user={"id": int(user.group(1)), "is_bot": False, "first_name": ""},
            )
        else:
            url = _check_url(target)
            if url is None:
                return
            entity.update(type="text_link", url=url)
    elif tag == "pre":
        if same_span and last is not None and last["type"] == "code":
            last["type"] = "pre"  # <pre><code class="language-x">: one pre entity
            return
        entity["type"] = "pre"
    else:  # code
        if same_span and last is not None and last["type"] == "pre":
            if argument:
                last["language"] = argument
            return
        entity["type"] = "code"
        if argument:
            entity["language"] = argument
    entities.append(entity)


_WHITESPACE = " \t\r\n"
_COMMAND = re.compile(r"(?<![\w/<>])/([A-Za-z0-9_]{1,64})(@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}(?![\w@])")
_HASHTAG = re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")
_URL = re.compile(r"(?<![\w/@.])https?://[^\s<>\"]+", re.IGNORECASE)
_NO_NEW_ENTITIES_INSIDE = {"code", "pre", "text_link", "text_mention", "custom_emoji", "url"}


def find_entities(text: str, existing: Iterable[JSON] = ()) -> list[JSON]:
    """Entities Telegram detects by itself: bot_command, mention, hashtag, url.

    Offsets and lengths are UTF-16 code units; nothing is found inside ``existing`` code,
    pre or link entities, and a mention inside a command (``/ask@Bot``) is not a mention.
    """
    offsets = _utf16_offsets(text)
    blocked = [
        (e["offset"], e["offset"] + e["length"])
        for e in existing
        if e["type"] in _NO_NEW_ENTITIES_INSIDE
    ]
    found: list[JSON] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in (
        ("bot_command", _COMMAND), ("url", _URL), ("mention", _MENTION), ("hashtag", _HASHTAG)
    ):  # fmt: skip
        for match in pattern.finditer(text):
            end_index = match.end()
            if kind == "url":
                end_index -= len(match.group()) - len(match.group().rstrip(".,;:!?)'\""))
            start, end = offsets[match.start()], offsets[end_index]
            spans = blocked + taken
            if any(start < b_end and b_start < end for b_start, b_end in spans):
                continue
            taken.append((start, end))
            found.append({"offset": start, "length": end - start, "type": kind})
    return sorted(found, key=lambda e: e["offset"])


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Strip leading/trailing whitespace as Telegram does, shifting and clipping entities."""
    lead = len(text) - len(text.lstrip(_WHITESPACE))
    stripped = text.strip(_WHITESPACE)
    limit = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, limit)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Call:
    """One request the bot made: method, decoded parameters, HTTP status and JSON answer."""

    method: str
    params: JSON
    status: int
    response: JSON

    @property
    def description(self) -> str:
        return str(self.response.get("description", ""))


@dataclass(frozen=True)
class SentMessage:
    """A snapshot of a message the bot sent, with its edits applied."""

    chat_id: int
    message_id: int
    text: str  # visible text, after entity parsing and trimming
    entities: list[JSON]  # parsed from HTML plus those Telegram detects (urls, commands...)
    parse_mode: str | None
    raw_text: str  # the text as the bot sent it (its HTML), latest edit
    reply_to: int | None  # id of the replied message in the same chat
    thread_id: int | None
    edits: list[str]  # visible texts before each edit, oldest first
    deleted: bool
    link_preview_options: JSON | None
    reply_markup: JSON | None
    message: JSON  # the Message object as Telegram would return it now


@dataclass
class _Msg:
    data: JSON
    from_bot: bool
    explicit_reply: int | None = None
    parse_mode: str | None = None
    raw_text: str = ""
    edits: list[str] = field(default_factory=list)
    deleted: bool = False
    link_preview_options: JSON | None = None

    def snapshot(self) -> SentMessage:
        data = copy.deepcopy(self.data)
        return SentMessage(
            chat_id=data["chat"]["id"],
            message_id=data["message_id"],
            text=data.get("text", ""),
            entities=data.get("entities", []),
            parse_mode=self.parse_mode,
            raw_text=self.raw_text,
            reply_to=self.explicit_reply,
            thread_id=data.get("message_thread_id"),
            edits=list(self.edits),
            deleted=self.deleted,
            link_preview_options=copy.deepcopy(self.link_preview_options),
            reply_markup=data.get("reply_markup"),
            message=data,
        )


@dataclass
class _Chat:
    data: JSON
    bot_status: str = "member"
    creator: int | None = None
    admins: set[int] = field(default_factory=set)
    members: set[int] = field(default_factory=set)
    blocked: bool = False
    migrated_to: int | None = None
    next_message_id: int = 1
    messages: dict[int, _Msg] = field(default_factory=dict)
    topics: dict[int, str] = field(default_factory=dict)
    send_times: deque[float] = field(default_factory=deque)

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def type(self) -> str:
        return str(self.data["type"])


ChatRef = int | Mapping[str, Any]
UserRef = int | Mapping[str, Any]
MessageRef = int | Mapping[str, Any] | SentMessage


def _ref_id(ref: ChatRef | UserRef) -> int:
    return ref if isinstance(ref, int) else int(ref["id"])


def _member(user: JSON, status: str) -> JSON:
    """A ChatMember object with every field PTB requires for ``status``."""
    member: JSON = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(dict.fromkeys(_ADMIN_RIGHTS, True))
        member.update(can_be_edited=False, is_anonymous=False, can_promote_members=False)
    elif status == "kicked":
        member["until_date"] = 0
    return member


# --------------------------------------------------------------------------- the server


class FakeBotAPI:
    """A Bot API server on 127.0.0.1 holding one bot, its chats, users and messages.

    Use as a context manager (or ``start()``/``stop()``), point PTB at ``base_url`` and
    ``base_file_url``, drive it with ``user_says`` & co., check ``sent_messages``/``calls``,
    and block on ``wait_for`` (or ``await wait_for_async`` from inside an event loop).
    """

    def __init__(
        self,
        token: str = "123456:TEST",
        bot_username: str = "NewsTestBot",
        bot_id: int | None = None,
        *,
        bot_name: str = "News Test Bot",
        privacy_mode: bool = True,
        strict_ampersand: bool = False,
    ) -> None:
        prefix = token.split(":", 1)[0]
        self.token = token
        self.bot_username = bot_username
        self.bot_id = bot_id if bot_id is not None else int(prefix) if prefix.isdigit() else 1
        self.bot_user: JSON = {
            "id": self.bot_id, "is_bot": True, "first_name": bot_name, "username": bot_username
        }  # fmt: skip
        self.privacy_mode = privacy_mode
        self.strict_ampersand = strict_ampersand
        self._cond = threading.Condition(threading.RLock())
        self._users: dict[int, JSON] = {}
        self._chats: dict[int, _Chat] = {}
        self._bot_messages: list[_Msg] = []
        self._calls: list[Call] = []
        self._updates: list[JSON] = []
        self._allowed_updates: list[str] = []
        self._poll_generation = 0
        self._webhook: JSON = {}
        self._commands: dict[tuple[str, int | None, int | None, str], list[JSON]] = {}
        self._chat_actions: list[tuple[int, str, int | None]] = []
        self._callback_queries: dict[str, JSON | None] = {}
        self._failures: dict[str, deque[ApiError]] = {}
        self._send_failures: dict[int, deque[ApiError]] = {}
        self._flood_limit: int | None = None
        self._flood_retry_after = 1
        self._ids = itertools.count(10_001)
        self._group_ids = itertools.count(1)
        self._update_ids = itertools.count(100_001)
        self._closing = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[JSON], Any]] = {
            name.lower(): getattr(self, f"_api_{name}")
            for name in (
                "getMe", "getUpdates", "setWebhook", "deleteWebhook", "getWebhookInfo",
                "sendMessage", "editMessageText", "deleteMessage", "sendChatAction",
                "setMyCommands", "getMyCommands", "deleteMyCommands", "getChat",
                "getChatMember", "getChatAdministrators", "answerCallbackQuery", "close",
                "logOut",
            )
        }  # fmt: skip

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeBotAPI:
        """Bind 127.0.0.1 on an ephemeral port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._closing = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake pending long polls, stop serving and free the port."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("FakeBotAPI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What to give PTB's ``base_url`` (PTB appends the token and ``/method``)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """What to give PTB's ``base_file_url`` (file downloads answer 404)."""
        return f"{self.url}/file/bot"

    # ----------------------------------------------------------------- world building

    def user(
        self,
        first_name: str = "Alice",
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "en",
        user_id: int | None = None,
    ) -> JSON:
        """Create a human user and return its User object."""
        with self._cond:
            user: JSON = {
                "id": user_id or next(self._ids), "is_bot": False, "first_name": first_name
            }  # fmt: skip
            for key, value in (
                ("last_name", last_name), ("username", username), ("language_code", language_code)
            ):  # fmt: skip
                if value:
                    user[key] = value
            self._users[user["id"]] = user
            return dict(user)

    def private_chat(self, user: UserRef) -> JSON:
        """The private chat of ``user`` with the bot (the user has pressed Start)."""
        with self._cond:
            u = self._get_user(user)
            if u["id"] not in self._chats:
                data = {"id": u["id"], "type": "private", "first_name": u["first_name"]}
                data.update({k: u[k] for k in ("last_name", "username") if k in u})
                self._chats[u["id"]] = _Chat(data, members={u["id"]})
            return dict(self._chats[u["id"]].data)

    def group(
        self,
        title: str = "Test Group",
        *,
        supergroup: bool = False,
        forum: bool = False,
        username: str | None = None,
    ) -> JSON:
        """A group the bot is a member of; ``forum`` implies a supergroup with topics."""
        with self._cond:
            n = next(self._group_ids)
            if supergroup or forum:
                data: JSON = {"id": -1001000000000 - n, "type": "supergroup", "title": title}
            else:
                data = {"id": -4000000000 - n, "type": "group", "title": title}
            if forum:
                data["is_forum"] = True
            if username:
                data["username"] = username
            self._chats[data["id"]] = _Chat(data)
            return dict(data)

    def upgrade_to_supergroup(self, chat: ChatRef, *, by: UserRef, notify: bool = True) -> JSON:
        """``by`` upgrades a basic group to a supergroup, which gets a new id; returns it.

        As in Telegram: the old group gets a service message with ``migrate_to_chat_id``
        and the new supergroup one with ``migrate_from_chat_id`` (the bot receives both,
        privacy mode or not); sending to the old id then fails with 400 and
        ``parameters.migrate_to_chat_id``. Members, administrators and the bot move along.
        ``notify=False``: the service messages are lost (the bot was down for too long).
        """
        with self._cond:
            old = self._get_chat(chat)
            if old.type != "group":
                raise ValueError("only a basic group can be upgraded")
            user = self._get_user(by)
            data: JSON = {
                "id": -1001000000000 - next(self._group_ids),
                "type": "supergroup",
                "title": old.data.get("title", ""),
            }
            new = _Chat(
                data,
                bot_status=old.bot_status,
                creator=old.creator,
                admins=set(old.admins),
                members=set(old.members),
            )
            self._chats[data["id"]] = new
            old.migrated_to = data["id"]
            moved = self._new_message(old, user, None)
            moved.data["migrate_to_chat_id"] = data["id"]
            arrived = self._new_message(new, user, None)
            arrived.data["migrate_from_chat_id"] = old.id
            if notify:
                self._push_update("message", moved.data)
                self._push_update("message", arrived.data)
            return dict(data)

    def channel(self, title: str = "Test Channel", *, username: str | None = None) -> JSON:
        """A channel where the bot is an administrator (needed to post)."""
        with self._cond:
            data: JSON = {
                "id": -1001000000000 - next(self._group_ids), "type": "channel", "title": title
            }  # fmt: skip
            if username:
                data["username"] = username
            self._chats[data["id"]] = _Chat(data, bot_status="administrator")
            return dict(data)

    def set_admins(
        self,
        chat: ChatRef,
        admins: Iterable[UserRef] = (),
        *,
        creator: UserRef | None = None,
        bot_is_admin: bool | None = None,
    ) -> None:
        """Set who administers ``chat`` (getChatMember / getChatAdministrators answer so)."""
        with self._cond:
            c = self._get_chat(chat)
            c.admins = {self._get_user(a)["id"] for a in admins}
            if creator is not None:
                c.creator = self._get_user(creator)["id"]
            c.members |= c.admins | ({c.creator} if c.creator else set())
            if bot_is_admin is not None:
                c.bot_status = "administrator" if bot_is_admin else "member"

    def block(self, chat: ChatRef, blocked: bool = True) -> JSON:
        """Mark a private chat's user as having blocked (or unblocked) the bot.

        Like Telegram, this also queues a ``my_chat_member`` update; it is returned.
        """
        with self._cond:
            c = self._get_chat(chat)
            if c.type != "private":
                raise ValueError("only a private chat's user can block the bot")
            c.blocked = blocked
            status = "kicked" if blocked else "member"
            return self._push_my_chat_member(c, status, self._users[c.id])

    def my_chat_member(self, chat: ChatRef, status: str, by: UserRef | None = None) -> JSON:
        """Change the bot's status in a group or channel and queue the ``my_chat_member`` update.

        ``status``: "member" (added), "administrator" (promoted), "left" (removed),
        "kicked" (banned). Returns the update.
        """
        if status not in ("member", "administrator", "left", "kicked"):
            raise ValueError(f"unknown chat member status {status!r}")
        with self._cond:
            c = self._get_chat(chat)
            actor = self._get_user(by) if by is not None else None
            if actor is None:
                actor = self._users.get(c.creator or 0) or self.user("Owner")
            return self._push_my_chat_member(c, status, actor)

    def create_topic(self, chat: ChatRef, name: str, *, by: UserRef) -> int:
        """``by`` opens a forum topic; returns its ``message_thread_id`` (its first message id).

        As in Telegram, later messages in the topic that reply to nothing carry this service
        message as ``reply_to_message``.
        """
        with self._cond:
            c = self._get_chat(chat)
            if not c.data.get("is_forum"):
                raise ValueError("topics need a forum supergroup: group(..., forum=True)")
            msg = self._new_message(c, self._get_user(by), None)
            thread_id = msg.data["message_id"]
            msg.data.update(
                message_thread_id=thread_id,
                is_topic_message=True,
                forum_topic_created={"name": name, "icon_color": 7322096},
            )
            c.topics[thread_id] = name
            self._push_update("message", msg.data)
            return thread_id

    def user_says(
        self,
        chat: ChatRef,
        user: UserRef,
        text: str,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        """A user writes ``text`` in ``chat``; returns the Message object.

        Entities (bot_command, mention, url, hashtag) are computed as Telegram does. The
        update is queued only if the bot would receive it: in groups under privacy mode
        (the default, unless the bot is admin) only commands, mentions of the bot and
        replies to the bot get through. A user writing to the bot unblocks it.
        """
        with self._cond:
            c = self._get_chat(chat)
            u = self._get_user(user)
            if c.type == "channel":
                raise ValueError("users do not write in channels: use channel_post()")
            if c.type == "private" and c.id != u["id"]:
                raise ValueError("a private chat only holds its own user")
            reply = self._find_message(c, reply_to) if reply_to is not None else None
            if reply_to is not None and reply is None:
                raise ValueError(f"no message {reply_to!r} in chat {c.id}")
            try:
                thread_id = self._thread_for(c, thread_id, reply)
            except ApiError as err:
                raise ValueError(f"{err.description} (thread {thread_id})") from None
            msg = self._new_message(c, u, text, reply=reply, thread_id=thread_id)
            msg.data["entities"] = find_entities(text)
            if not msg.data["entities"]:
                del msg.data["entities"]
            c.members.add(u["id"])
            c.blocked = False
            if self._bot_receives(c, msg, reply):
                self._push_update("message", msg.data)
            return copy.deepcopy(msg.data)

    def channel_post(self, chat: ChatRef, text: str) -> JSON:
        """A post in a channel (signed by the channel); queued as ``channel_post``."""
        with self._cond:
            c = self._get_chat(chat)
            if c.type != "channel":
                raise ValueError("channel_post() needs a channel")
            msg = self._new_message(c, None, text, sender_chat=c.data)
            entities = find_entities(text)
            if entities:
                msg.data["entities"] = entities
            if c.bot_status in ("member", "administrator"):
                self._push_update("channel_post", msg.data)
            return copy.deepcopy(msg.data)

    def press_button(self, chat: ChatRef, user: UserRef, message: MessageRef, data: str) -> str:
        """A user presses an inline button carrying ``data``; returns the callback query id."""
        with self._cond:
            c = self._get_chat(chat)
            msg = self._find_message(c, message)
            if msg is None:
                raise ValueError(f"no message {message!r} in chat {c.id}")
            query_id = str(next(self._ids))
            self._callback_queries[query_id] = None
            query = {
                "id": query_id,
                "from": self._get_user(user),
                "chat_instance": str(abs(c.id)),
                "message": msg.data,
                "data": data,
            }
            self._push_update("callback_query", query)
            return query_id

    def inject_update(self, kind: str, payload: Mapping[str, Any]) -> JSON:
        """Queue a raw update of any kind (``{"update_id": ..., kind: payload}``)."""
        with self._cond:
            return self._push_update(kind, dict(payload))

    # ----------------------------------------------------------------- failures

    def fail_next(self, method: str, count: int = 1, retry_after: int = 1) -> None:
        """The next ``count`` calls of ``method`` answer 429 "retry after N"."""
        self.fail_next_with(method, too_many_requests(retry_after), count)

    def fail_next_with(self, method: str, error: ApiError, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` answer with ``error`` (any status)."""
        with self._cond:
            self._failures.setdefault(method.lower(), deque()).extend([error] * count)

    def fail_sends_to(self, chat: ChatRef, error: ApiError, count: int = 1) -> None:
        """The next ``count`` sendMessage calls to ``chat`` answer with ``error``; sends to
        other chats go through."""
        with self._cond:
            self._send_failures.setdefault(_ref_id(chat), deque()).extend([error] * count)

    def set_flood_limit(self, per_chat_per_second: int | None, retry_after: int = 1) -> None:
        """Answer 429 when a chat gets more than N sendMessage in one second (None: off)."""
        with self._cond:
            self._flood_limit = per_chat_per_second
            self._flood_retry_after = retry_after

    # ----------------------------------------------------------------- inspection

    def calls(self, method: str | None = None) -> list[Call]:
        """Every request so far (or those of ``method``), oldest first."""
        with self._cond:
            if method is None:
                return list(self._calls)
            return [call for call in self._calls if call.method.lower() == method.lower()]

    def sent_messages(
        self, chat: ChatRef | None = None, include_deleted: bool = False
    ) -> list[SentMessage]:
        """Messages the bot sent (to ``chat``, or anywhere), in sending order, edits applied."""
        with self._cond:
            chat_id = None if chat is None else _ref_id(chat)
            return [
                m.snapshot()
                for m in self._bot_messages
                if (chat_id is None or m.data["chat"]["id"] == chat_id)
                and (include_deleted or not m.deleted)
            ]

    def history(self, chat: ChatRef) -> list[JSON]:
        """All live messages of a chat (users' and the bot's), as Message objects."""
        with self._cond:
            c = self._get_chat(chat)
            return [copy.deepcopy(m.data) for m in c.messages.values() if not m.deleted]

    def chat_actions(self, chat: ChatRef | None = None) -> list[tuple[int, str, int | None]]:
        """(chat_id, action, thread_id) of every sendChatAction accepted."""
        with self._cond:
            return [a for a in self._chat_actions if chat is None or a[0] == _ref_id(chat)]

    def commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[JSON]:
        """The command menu last set for ``scope`` (default scope) and language."""
        with self._cond:
            key = self._scope_key(dict(scope or {"type": "default"}), language_code)
            return copy.deepcopy(self._commands.get(key, []))

    def callback_answer(self, query_id: str) -> JSON | None:
        """The parameters of answerCallbackQuery for ``query_id`` (None: not answered)."""
        with self._cond:
            return copy.deepcopy(self._callback_queries.get(query_id))

    @property
    def webhook(self) -> JSON:
        """The webhook as last set (url, secret_token, ...); empty when none."""
        with self._cond:
            return dict(self._webhook)

    def pending_updates(self) -> list[JSON]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        with self._cond:
            return copy.deepcopy(self._updates)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        """Block until ``predicate()`` is truthy and return its value.

        On timeout, raise AssertionError listing the recent calls. Do not call this from the
        event loop that runs the bot: use ``wait_for_async`` there.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_report(what or repr(predicate), timeout))
                self._cond.wait(remaining)

    async def wait_for_async(
        self, predicate: Callable[[], T], timeout: float = 10.0, what: str = ""
    ) -> T:
        """``wait_for`` without blocking the running event loop."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, what)

    def wait_for_messages(
        self, chat: ChatRef, count: int = 1, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Block until the bot has sent at least ``count`` live messages to ``chat``."""

        def enough() -> list[SentMessage]:
            found = self.sent_messages(chat)
            return found if len(found) >= count else []

        return self.wait_for(
            enough, timeout, f"{count} message(s) from the bot in chat {_ref_id(chat)}"
        )

    async def wait_for_messages_async(
        self, chat: ChatRef, count: int = 1, timeout: float = 10.0
    ) -> list[SentMessage]:
        """``wait_for_messages`` without blocking the running event loop."""
        return await asyncio.to_thread(self.wait_for_messages, chat, count, timeout)

    def _timeout_report(self, what: str, timeout: float) -> str:
        calls = [c for c in self._calls if c.method.lower() != "getupdates"]
        polls = len(self._calls) - len(calls)
        lines = [f"timed out after {timeout}s waiting for {what}"]
        lines.append(f"{polls} getUpdates call(s); {len(self._updates)} update(s) unconfirmed")
        lines.append(f"last {min(len(calls), 20)} other call(s):")
        for call in calls[-20:]:
            params = json.dumps(call.params, ensure_ascii=False, default=str)[:300]
            outcome = "ok" if call.status == 200 else call.description
            lines.append(f"  {call.method} {params} -> {call.status} {outcome}")
        return "\n".join(lines)

    # ----------------------------------------------------------------- internals

    def _get_user(self, user: UserRef) -> JSON:
        user_id = _ref_id(user)
        if user_id == self.bot_id:
            return dict(self.bot_user)
        if user_id not in self._users:
            raise ValueError(f"unknown user {user_id}: create it with user()")
        return dict(self._users[user_id])

    def _get_chat(self, chat: ChatRef) -> _Chat:
        chat_id = _ref_id(chat)
        if chat_id not in self._chats:
            raise ValueError(f"unknown chat {chat_id}: create it with private_chat/group/channel")
        return self._chats[chat_id]

    def _find_message(self, chat: _Chat, ref: MessageRef) -> _Msg | None:
        if isinstance(ref, SentMessage):
            message_id = ref.message_id
        elif isinstance(ref, int):
            message_id = ref
        else:
            message_id = int(ref["message_id"])
        msg = chat.messages.get(message_id)
        return None if msg is None or msg.deleted else msg

    def _thread_for(self, chat: _Chat, thread_id: int | None, reply: _Msg | None) -> int | None:
        """The thread a message goes to: the one asked for, else the replied message's."""
        if thread_id is None and reply is not None:
            thread_id = reply.data.get("message_thread_id")
        known = chat.topics if chat.data.get("is_forum") else chat.messages
        if thread_id is not None and thread_id not in known:
            raise bad_request("message thread not found")
        return thread_id

    def _new_message(
        self,
        chat: _Chat,
        sender: JSON | None,
        text: str | None,
        *,
        reply: _Msg | None = None,
        thread_id: int | None = None,
        sender_chat: JSON | None = None,
    ) -> _Msg:
        data: JSON = {"message_id": chat.next_message_id, "date": int(time.time())}
        chat.next_message_id += 1
        if sender is not None:
            data["from"] = dict(sender)
        if sender_chat is not None:
            data["sender_chat"] = dict(sender_chat)
        data["chat"] = dict(chat.data)
        if thread_id is not None:
            data["message_thread_id"] = thread_id
            if chat.data.get("is_forum"):
                data["is_topic_message"] = True
        replied = reply
        if replied is None and thread_id is not None and chat.data.get("is_forum"):
            replied = chat.messages.get(thread_id)  # Telegram's quirk: the topic's first message
        if replied is not None:
            data["reply_to_message"] = {
                k: copy.deepcopy(v) for k, v in replied.data.items() if k != "reply_to_message"
            }
        if text is not None:
            data["text"] = text
        msg = _Msg(
            data, from_bot=sender is not None and sender["id"] == self.bot_id,
            explicit_reply=reply.data["message_id"] if reply else None,
        )  # fmt: skip
        chat.messages[data["message_id"]] = msg
        return msg

    def _bot_receives(self, chat: _Chat, msg: _Msg, reply: _Msg | None) -> bool:
        """Whether Telegram would deliver a user's message to the bot (privacy mode)."""
        if chat.type == "private":
            return True
        if chat.bot_status not in ("member", "administrator", "creator"):
            return False
        if not self.privacy_mode or chat.bot_status != "member":
            return True
        text = msg.data.get("text", "")
        mention = "@" + self.bot_username.lower()
        mentioned = any(
            e["type"] == "mention" and text[e["offset"] :].lower().startswith(mention)
            for e in msg.data.get("entities", [])
        )
        command = re.match(r"/\w+(?:@(\w+))?", text, re.ASCII)
        for_us = command is not None and command.group(1) in (None, self.bot_username)
        return for_us or mentioned or (reply is not None and reply.from_bot)

    def _push_update(self, kind: str, payload: JSON) -> JSON:
        update = {"update_id": next(self._update_ids), kind: copy.deepcopy(payload)}
        self._updates.append(update)
        self._cond.notify_all()
        return copy.deepcopy(update)

    def _push_my_chat_member(self, chat: _Chat, status: str, actor: JSON) -> JSON:
        if chat.type == "private":
            old = "member" if status == "kicked" else "kicked"
        else:
            old, chat.bot_status = chat.bot_status, status
        return self._push_update(
            "my_chat_member",
            {
                "chat": dict(chat.data),
                "from": actor,
                "date": int(time.time()),
                "old_chat_member": _member(self.bot_user, old),
                "new_chat_member": _member(self.bot_user, status),
            },
        )

    def _scope_key(
        self, scope: JSON, language_code: str
    ) -> tuple[str, int | None, int | None, str]:
        kind = scope.get("type")
        if kind in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
            return (kind, None, None, language_code)
        if kind in ("chat", "chat_administrators", "chat_member"):
            chat = self._resolve_chat(scope.get("chat_id"))
            user = _int_param(scope, "user_id") if kind == "chat_member" else None
            if kind == "chat_member" and user not in self._users:
                raise bad_request("user not found")
            return (kind, chat.id, user, language_code)
        raise bad_request("unsupported bot command scope type")

    def _resolve_chat(self, raw: Any) -> _Chat:
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self._chats.values():
                if str(chat.data.get("username", "")).lower() == raw[1:].lower():
                    return chat
            raise bad_request("chat not found")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        if chat_id not in self._chats:
            raise bad_request("chat not found")
        return self._chats[chat_id]

    def _check_can_send(self, chat: _Chat) -> None:
        if chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if chat.type == "private":
            if chat.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            return
        kind = f"{chat.type} chat"
        if chat.type == "channel":
            if chat.bot_status in ("left", "kicked"):
                raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
            if chat.bot_status == "member":
                raise bad_request("need administrator rights in the channel chat")
        elif chat.bot_status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind}")
        elif chat.bot_status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind}")

    def _format(self, params: JSON) -> tuple[str, list[JSON], str | None, str]:
        """Validate text and parse_mode; return (text, entities, parse_mode, raw text)."""
        raw = params.get("text")
        raw = "" if raw is None else str(raw)
        parse_mode = params.get("parse_mode") or None
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                text, entities = parse_html(raw, strict_ampersand=self.strict_ampersand)
            except EntityParseError as err:
                raise bad_request(f"can't parse entities: {err}") from None
        elif mode == "":
            text, entities = raw, _json_param(params, "entities") or []
        elif mode in ("markdown", "markdownv2"):
            raise bad_request(f"the fake Bot API does not implement parse_mode {parse_mode}")
        else:
            raise bad_request("unsupported parse_mode")
        text, entities = _trim(text, entities)
        if not text:
            raise bad_request("message text is empty")
        if utf16_len(text) > MAX_MESSAGE_LENGTH:
            raise bad_request("message is too long")
        entities = sorted(
            entities + find_entities(text, entities), key=lambda e: (e["offset"], -e["length"])
        )
        return text, entities, parse_mode, raw

    def _flood_check(self, chat: _Chat) -> None:
        if self._flood_limit is None:
            return
        now = time.monotonic()
        while chat.send_times and now - chat.send_times[0] >= 1.0:
            chat.send_times.popleft()
        if len(chat.send_times) >= self._flood_limit:
            raise too_many_requests(self._flood_retry_after)
        chat.send_times.append(now)

    def dispatch(self, path: str, content_type: str, body: bytes) -> tuple[int, JSON]:
        """Answer one HTTP request (called by the server's handler threads)."""
        parts = urlsplit(path)
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", parts.path)
        if match is None:
            return 404, ApiError(404, "Not Found").payload()
        token, method = match.groups()
        error: ApiError | None = None
        try:
            params = _parse_params(parts.query, content_type, body)
        except ApiError as err:
            params, error = {}, err
        with self._cond:
            try:
                if error is not None:
                    raise error
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                handler = self._methods.get(method.lower())
                if handler is None:
                    raise ApiError(404, "Not Found")
                failures = self._failures.get(method.lower())
                if failures:
                    raise failures.popleft()
                status, answer = 200, {"ok": True, "result": handler(params)}
            except ApiError as err:
                status, answer = err.status, err.payload()
            self._calls.append(Call(method, params, status, copy.deepcopy(answer)))
            self._cond.notify_all()
        return status, answer

    # ----------------------------------------------------------------- API methods
    # Each runs with the lock held; getUpdates releases it while it waits.

    def _api_getMe(self, params: JSON) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_getUpdates(self, params: JSON) -> list[JSON]:
        if self._webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int_param(params, "offset")
        limit = min(max(_int_param(params, "limit") or 100, 1), 100)
        timeout = float(params.get("timeout") or 0)
        allowed = _json_param(params, "allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()  # an older long poll now ends with 409 Conflict
        if offset is not None and offset < 0:
            self._updates = self._updates[offset:]
        elif offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            self._updates = [u for u in self._updates if self._is_allowed(u)]
            remaining = deadline - time.monotonic()
            if self._updates or remaining <= 0 or self._closing:
                return copy.deepcopy(self._updates[:limit])
            self._cond.wait(remaining)

    def _is_allowed(self, update: JSON) -> bool:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _NOT_DELIVERED_BY_DEFAULT

    def _api_setWebhook(self, params: JSON) -> bool:
        url = str(params.get("url") or "")
        if url and not url.lower().startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("secret token contains unallowed characters")
        if _bool_param(params, "drop_pending_updates"):
            self._updates.clear()
        allowed = _json_param(params, "allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)
        self._webhook = {k: v for k, v in params.items() if k != "certificate"} if url else {}
        return True

    def _api_deleteWebhook(self, params: JSON) -> bool:
        if _bool_param(params, "drop_pending_updates"):
            self._updates.clear()
        self._webhook = {}
        return True

    def _api_getWebhookInfo(self, params: JSON) -> JSON:
        info: JSON = {
            "url": self._webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["max_connections"] = _int_param(self._webhook, "max_connections") or 40
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    def _api_sendMessage(self, params: JSON) -> JSON:
        chat = self._resolve_chat(params.get("chat_id"))
        if self._send_failures.get(chat.id):
            raise self._send_failures[chat.id].popleft()
        self._check_can_send(chat)
        text, entities, parse_mode, raw = self._format(params)
        reply, reply_params = self._reply_target(chat, params)
        thread_id = self._thread_for(chat, _int_param(params, "message_thread_id"), reply)
        markup = _checked_markup(_json_param(params, "reply_markup"))
        quote = _quote(reply, reply_params)
        self._flood_check(chat)
        sender = None if chat.type == "channel" else self.bot_user
        msg = self._new_message(
            chat, sender, text, reply=reply, thread_id=thread_id,
            sender_chat=chat.data if chat.type == "channel" else None,
        )  # fmt: skip
        msg.from_bot = True
        if entities:
            msg.data["entities"] = entities
        if markup is not None:
            msg.data["reply_markup"] = markup
        preview = _json_param(params, "link_preview_options")
        if preview is None and _bool_param(params, "disable_web_page_preview"):
            preview = {"is_disabled": True}
        if preview is not None:
            msg.data["link_preview_options"] = preview
        if quote is not None:
            msg.data["quote"] = quote
        msg.parse_mode, msg.raw_text, msg.link_preview_options = parse_mode, raw, preview
        self._bot_messages.append(msg)
        return copy.deepcopy(msg.data)

    def _reply_target(self, chat: _Chat, params: JSON) -> tuple[_Msg | None, JSON]:
        """The replied message (reply_parameters or legacy reply_to_message_id)."""
        reply_params = _json_param(params, "reply_parameters")
        if reply_params is None and params.get("reply_to_message_id") not in (None, ""):
            reply_params = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        if not reply_params:
            return None, {}
        target_chat = chat
        if reply_params.get("chat_id") not in (None, ""):
            target_chat = self._resolve_chat(reply_params["chat_id"])
        message_id = _int_param(reply_params, "message_id")
        msg = target_chat.messages.get(message_id or 0)
        if msg is None or msg.deleted or target_chat is not chat:
            if _bool_param(reply_params, "allow_sending_without_reply"):
                return None, reply_params
            raise bad_request("message to be replied not found")
        return msg, reply_params

    def _api_editMessageText(self, params: JSON) -> JSON:
        if params.get("inline_message_id"):
            raise bad_request("the fake Bot API does not implement inline messages")
        chat = self._resolve_chat(params.get("chat_id"))
        message_id = _int_param(params, "message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        msg = self._find_message(chat, message_id)
        if msg is None:
            raise bad_request("message to edit not found")
        if not msg.from_bot:
            raise bad_request("message can't be edited")
        text, entities, parse_mode, raw = self._format(params)
        markup = _checked_markup(_json_param(params, "reply_markup"))
        if (text, entities, markup) == (
            msg.data.get("text"), msg.data.get("entities", []), msg.data.get("reply_markup")
        ):  # fmt: skip
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        msg.edits.append(str(msg.data.get("text", "")))
        msg.data.update(text=text, edit_date=int(time.time()))
        for key, value in (("entities", entities), ("reply_markup", markup)):
            if value:
                msg.data[key] = value
            else:
                msg.data.pop(key, None)
        msg.parse_mode, msg.raw_text = parse_mode, raw
        return copy.deepcopy(msg.data)

    def _api_deleteMessage(self, params: JSON) -> bool:
        chat = self._resolve_chat(params.get("chat_id"))
        msg = self._find_message(chat, _int_param(params, "message_id") or 0)
        if msg is None:
            raise bad_request("message to delete not found")
        if not msg.from_bot and chat.type != "private" and chat.bot_status != "administrator":
            raise bad_request("message can't be deleted")
        msg.deleted = True
        return True

    def _api_sendChatAction(self, params: JSON) -> bool:
        chat = self._resolve_chat(params.get("chat_id"))
        self._check_can_send(chat)
        action = str(params.get("action") or "")
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._chat_actions.append((chat.id, action, _int_param(params, "message_thread_id")))
        return True

    def _api_setMyCommands(self, params: JSON) -> bool:
        commands = _json_param(params, "commands")
        if not isinstance(commands, list):
            raise bad_request('parameter "commands" is required')
        if len(commands) > MAX_COMMANDS:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        checked = []
        for item in commands:
            name = str(item.get("command", "")).strip().removeprefix("/")
            description = str(item.get("description", "")).strip()
            if not name:
                raise bad_request("command must be non-empty")
            if len(name) > 32:
                raise bad_request("command length must not exceed 32")
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not description:
                raise bad_request("command description must be non-empty")
            if len(description) > 256:
                raise bad_request("command description length must not exceed 256")
            checked.append({"command": name, "description": description})
        self._commands[self._command_key(params)] = checked
        return True

    def _api_getMyCommands(self, params: JSON) -> list[JSON]:
        return copy.deepcopy(self._commands.get(self._command_key(params), []))

    def _api_deleteMyCommands(self, params: JSON) -> bool:
        self._commands.pop(self._command_key(params), None)
        return True

    def _command_key(self, params: JSON) -> tuple[str, int | None, int | None, str]:
        language = str(params.get("language_code") or "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad_request("invalid language code specified")
        return self._scope_key(_json_param(params, "scope") or {"type": "default"}, language)

    def _api_getChat(self, params: JSON) -> JSON:
        chat = self._resolve_chat(params.get("chat_id"))
        gifts = (
            "unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription",
            "gifts_from_channels",
        )  # fmt: skip
        return {
            **chat.data,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys(gifts, False),
        }

    def _status_of(self, chat: _Chat, user_id: int) -> str:
        if user_id == self.bot_id:
            return "member" if chat.type == "private" else chat.bot_status
        if user_id == chat.creator:
            return "creator"
        if user_id in chat.admins:
            return "administrator"
        return "member" if user_id in chat.members else "left"

    def _api_getChatMember(self, params: JSON) -> JSON:
        chat = self._resolve_chat(params.get("chat_id"))
        user_id = _int_param(params, "user_id")
        if user_id is None or (user_id not in self._users and user_id != self.bot_id):
            raise bad_request("user not found")
        return _member(self._get_user(user_id), self._status_of(chat, user_id))

    def _api_getChatAdministrators(self, params: JSON) -> list[JSON]:
        chat = self._resolve_chat(params.get("chat_id"))
        if chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        ids = ([chat.creator] if chat.creator else []) + sorted(chat.admins - {chat.creator})
        if chat.bot_status == "administrator":
            ids.append(self.bot_id)
        return [_member(self._get_user(i), self._status_of(chat, i)) for i in ids]

    def _api_answerCallbackQuery(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callback_queries or self._callback_queries[query_id]:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callback_queries[query_id] = dict(params)
        return True

    def _api_close(self, params: JSON) -> bool:
        return True

    def _api_logOut(self, params: JSON) -> bool:
        return True


# --------------------------------------------------------------------------- wire format


def _parse_params(query: str, content_type: str, body: bytes) -> JSON:
    """Decode query string plus JSON, urlencoded or multipart body into typed parameters."""
    raw: JSON = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            raise bad_request("can't parse JSON object") from None
        if not isinstance(decoded, dict):
            raise bad_request("can't parse JSON object")
        raw.update(decoded)
    elif kind == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        raw.update({k: v[-1] for k, v in form.items()})
    elif kind == "multipart/form-data":
        header = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + body)
        for part in message.walk():
            name = part.get_param("name", header="content-disposition")
            if part.is_multipart() or not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            raw[name] = data if part.get_filename() else data.decode("utf-8")
    return {k: _typed(k, v) for k, v in raw.items()}


def _typed(name: str, value: Any) -> Any:
    """PTB sends non-string values JSON-encoded in forms; decode them, keep text as text."""
    if isinstance(value, str) and name not in _STRING_PARAMS and _JSON_LITERAL.fullmatch(value):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _int_param(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f'invalid parameter "{name}"') from None


def _bool_param(params: Mapping[str, Any], name: str) -> bool:
    return params.get(name) in (True, 1, "true", "True", "1")


def _json_param(params: Mapping[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value) if value else None
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    return value


def _quote(reply: _Msg | None, reply_params: JSON) -> JSON | None:
    """The quote part of a reply; Telegram refuses a quote absent from the replied text."""
    quote = reply_params.get("quote")
    if reply is None or not quote:
        return None
    source = str(reply.data.get("text", ""))
    position = source.find(str(quote))
    if position < 0:
        raise bad_request("QUOTE_TEXT_INVALID")
    return {"text": quote, "position": utf16_len(source[:position]), "is_manual": True}


def _checked_markup(markup: Any) -> JSON | None:
    """Keep inline keyboards (Telegram echoes only those) and check callback_data size."""
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that forwards every request to ``fake.dispatch``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall
    fake: FakeBotAPI

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, answer = self.fake.dispatch(self.path, self.headers.get("Content-Type", ""), body)
        raw = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. a cancelled long poll)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""
