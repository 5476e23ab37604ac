"""Telegram adapter: aiogram routers in, rendered views out through the outbox."""

# Before any aiogram import: its models then build on first use, not all at import.
from handlers.telegram import lazy_models as lazy_models
