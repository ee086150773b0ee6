"""`datagen eval`: the paper's metrics (section 5) on a held-out split, for a trained LoRA and for
the dataset behind it. `scores` holds the arithmetic every metric shares, model-free."""
