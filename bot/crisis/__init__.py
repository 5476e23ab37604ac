"""Crisis mode: thresholds (pure) and the service that opens and closes crises."""
