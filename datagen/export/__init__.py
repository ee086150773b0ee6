"""Exports of a run's final shards: Hugging Face datasets (hf) with their dataset card (card)."""
