"""E-mail: the organisation's mailbox read over IMAP (reader.py, letters.py) and approved
answers sent over SMTP (transport.py)."""
