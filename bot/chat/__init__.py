"""Where chats come in: transport-neutral inbound events (presses, replies, commands) and
what commands answer. Adapters translate their library's objects into these."""
