"""The Telegram Bot API test server, one module per Bot API area."""
