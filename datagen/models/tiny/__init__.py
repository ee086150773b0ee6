"""Tiny random-weight builds of every model datagen loads, saved as the real ones are (configs,
tokenizers, save_pretrained) so tests and the CPU demo load them through the same code path."""
