"""Experiment trackers (Weights & Biases) and the files other tools read (metrics.csv, TensorBoard)."""
