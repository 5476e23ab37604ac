"""One repository per module, each implementing a port of bot/ports.py over one session.

Repositories flush but never commit: the unit of work (store/uow.py) owns the transaction.
Rows become domain objects and back in store/mappers.py; bulk statements go through
store/driver.py."""
