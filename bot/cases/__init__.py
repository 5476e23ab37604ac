"""Cases: the state machine and its one check, rights, the case service with its cards, author
cards, prompts and menus, outcomes of a press, replies."""
