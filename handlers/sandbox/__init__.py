"""The sandbox: a chat adapter in the browser, served by the bot's own HTTP server."""
