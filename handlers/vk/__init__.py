"""The VK community page: Callback API events in (callback.py stores them, intake.py turns
them into mentions through events.py), approved answers out (transport.py over api.py)."""
