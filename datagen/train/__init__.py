"""`datagen train`: SIGMA-GEN LoRA training on FLUX.1 Kontext over sigma-set shards (/1 and /2)."""
