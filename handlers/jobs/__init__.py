"""APScheduler jobs: the SLA clock, crisis watch, digests."""
