"""Network definitions, datasets, degradations and the training loop (knows nothing of Triton)."""
