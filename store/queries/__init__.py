"""Read-only queries across many tables: the figures of digests (reports.py) and the rows
of `otklik report` (export.py). They change nothing; the repositories in store/repos/ do."""
