"""sigma-set out and back: the final shards' writer, the one decoder every reader uses, the
reader of a run's finished samples, and the validator of the format's invariants."""
