"""Files out: the report export, the digest chart."""
