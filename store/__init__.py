"""Persistence: the only package that speaks SQL."""

from store.db import Database

__all__ = ["Database"]
