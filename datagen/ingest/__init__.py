"""Readers of existing subject datasets for `datagen ingest` (rows, load, sources)."""
