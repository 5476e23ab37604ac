"""Cases: the state machine and its one check (lifecycle), the case service and what it
composes: grouping mentions into cases, cards and their views, prompts and menus, author
cards, outcomes of a press, reply templates, and what it asks of the SLA clock (deadlines)."""
