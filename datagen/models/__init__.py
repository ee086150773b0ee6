"""Real model backends: loading by id or path, LLM prompt writing, diffusion pipelines, tiny models."""
