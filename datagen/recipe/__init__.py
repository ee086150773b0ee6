"""Pure helpers the stages call: the recipe's filters, geometry, box fits, mask clean-up, identity
inputs, colour similarity, the training conditioning, the LLM scene spec and the prompts' draws.
No file I/O, no Ray: every function maps arrays and settings to arrays and verdicts."""
