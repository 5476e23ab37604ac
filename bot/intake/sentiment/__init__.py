"""Sentiment of a mention from lexicons and rules (ru, en, pl)."""
