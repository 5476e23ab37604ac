"""`TelegramServer`: the Bot API areas put together into one in-memory Telegram.

Each base is one area (app.py routes HTTP to them, people.py is the test side); they share the
state and internals of core.py. Next: core.py.
"""

from __future__ import annotations

from tests.doubles.telegram_server.app import HttpApp
from tests.doubles.telegram_server.chats import ChatApi
from tests.doubles.telegram_server.commands import CommandApi
from tests.doubles.telegram_server.people import PeopleSide
from tests.doubles.telegram_server.updates import UpdateApi
from tests.doubles.telegram_server.webhooks import WebhookApi


class TelegramServer(HttpApp, PeopleSide, UpdateApi, WebhookApi, CommandApi, ChatApi):
    """An in-memory Telegram with a Bot API endpoint at `api_base`."""
