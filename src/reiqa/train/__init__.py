"""Training: optimisers, learning-rate schedules and the training loop."""
