"""Data sources: the DCASE folder layout, the synthetic default dataset, downloads."""
