"""`datagen train`: SIGMA-GEN LoRA training on FLUX.1 Kontext over sigma-set/1 shards."""
