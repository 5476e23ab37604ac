"""What the bot says and hears, transport-neutral: views, texts, answers, inbound events,
the outbox and its delivery."""
