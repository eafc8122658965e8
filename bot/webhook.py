"""The bot's own HTTP server (tornado, from PTB's webhooks extra): the webhook Telegram posts
updates to, checked against the secret token, and a health endpoint for probes.

PTB's `run_webhook` has no health endpoint, so the Application is built without an Updater
and this server puts the updates on `application.update_queue` itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
from http import HTTPStatus
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class _WebhookHandler(tornado.web.RequestHandler):
    """POST: one update, accepted only with the right secret token."""

    def initialize(self, bot_app: Application[Any, Any, Any, Any, Any, Any], secret: str) -> None:
        self.bot_app = bot_app
        self.secret = secret

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning(
                "webhook call from %s refused: wrong or missing secret token",
                self.request.remote_ip,
            )
            self.send_error(HTTPStatus.FORBIDDEN)
            return
        try:
            update = Update.de_json(json.loads(self.request.body), self.bot_app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("webhook call with a body that is no update: %s", exc)
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        await self.bot_app.update_queue.put(update)
        self.set_status(HTTPStatus.OK)

    def log_exception(self, *args: Any) -> None:
        """tornado's default logs a traceback for every 403; the warning above is enough."""


class _HealthHandler(tornado.web.RequestHandler):
    """GET: 200 while the Application runs and receives updates, else 503."""

    def initialize(self, bot_app: Application[Any, Any, Any, Any, Any, Any], mode: str) -> None:
        self.bot_app = bot_app
        self.mode = mode

    def get(self) -> None:
        updater = self.bot_app.updater
        receiving = updater.running if updater is not None else True
        healthy = self.bot_app.running and receiving
        self.set_status(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"ok": healthy, "mode": self.mode}))


class WebServer:
    """Serves the webhook path (when given a secret) and the health path on one port."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        *,
        webhook_path: str | None,
        secret: str | None,
        health_path: str,
    ) -> None:
        routes: list[Any] = []
        if webhook_path is not None and secret:
            routes.append(
                (webhook_path, _WebhookHandler, {"bot_app": application, "secret": secret})
            )
        if health_path:
            mode = "webhook" if webhook_path is not None else "polling"
            routes.append((health_path, _HealthHandler, {"bot_app": application, "mode": mode}))
        self.serves_anything = bool(routes)
        # tornado logs every request at INFO: one line per update and per health probe.
        logging.getLogger("tornado.access").setLevel(logging.WARNING)
        self._app = tornado.web.Application(routes)
        self._server: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None

    def start(self, host: str, port: int) -> int:
        """Listen (port 0: any free port) on the running event loop; return the port."""
        sockets = tornado.netutil.bind_sockets(port, host, family=socket.AF_UNSPEC)
        self._server = tornado.httpserver.HTTPServer(self._app, xheaders=True)
        self._server.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None
