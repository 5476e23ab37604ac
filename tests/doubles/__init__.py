"""Test servers and worlds: the Bot API test server, Synapse, fakes."""
