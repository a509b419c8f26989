"""Experiment trackers (Weights & Biases)."""
