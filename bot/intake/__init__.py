"""Intake: from a mention to a case: routing, sentiment, lemmas, bulk intake, mapping of
sources' records."""
