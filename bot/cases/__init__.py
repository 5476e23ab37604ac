"""Cases: the state machine and its one check, rights, the case service, replies."""
