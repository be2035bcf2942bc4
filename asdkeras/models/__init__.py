"""Model builders and losses."""
