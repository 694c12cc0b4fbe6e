"""Ablations: one change to a study's winner at a time, scored by the final stage's cross-validation."""
