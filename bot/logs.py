"""Logging for the bot: Bot API URLs contain the token, so it is scrubbed wherever a
library logs URLs."""

from __future__ import annotations

import logging

# PTB logs the API URL at DEBUG; httpx logs every request URL at INFO.
_URL_LOGGERS = ("telegram.Bot", "telegram.ext.ExtBot", "httpx")


class _Redact(logging.Filter):
    """Replaces a secret in a record's message before any handler sees it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "<token>"), None
        return True


def hide_in_logs(token: str) -> None:
    """Scrub `token` from the loggers that log URLs (once per token), and keep httpx's
    one line per request out of INFO logs."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redact) and f.secret == token for f in logger.filters):
            logger.addFilter(_Redact(token))
