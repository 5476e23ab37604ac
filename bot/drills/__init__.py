"""Crisis drills: a scenario's timeline of synthetic mentions fed through the real intake
(timeline.py, then service.py), and the drill report at the end (bot/reports/drill.py)."""
