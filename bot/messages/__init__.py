"""What the bot says: neutral views, their texts per locale, the outbox and its delivery
worker. Everything the bot posts is an outbox item first."""
