"""Encoders, the MoCo-v2 machinery, and checkpoints."""
