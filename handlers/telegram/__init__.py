"""Telegram adapter: aiogram routers in, rendered views out through the outbox."""
