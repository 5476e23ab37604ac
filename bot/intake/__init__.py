"""Intake: from a mention to a case: routing, sentiment, grouping, bulk, mapping."""
