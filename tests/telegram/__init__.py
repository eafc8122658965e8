"""End-to-end test support for the Telegram side: a fake Bot API server."""
