"""Mentions in: the HTTP API, feeds, file import."""
