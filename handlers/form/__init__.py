"""The citizens' web form (GET and POST /form): web.py serves it, guard.py keeps robots out."""
