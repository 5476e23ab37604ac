"""Otklik domain core: cases, actions, rights and services. Knows no transport and no SQL."""

__version__ = "0.1.0"
