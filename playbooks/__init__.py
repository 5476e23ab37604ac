"""The administrator's data: rules, SLA, templates, lexicons. Python only says where it is."""

from pathlib import Path

PLAYBOOKS_DIR = Path(__file__).resolve().parent
