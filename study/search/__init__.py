"""The search: Ray Tune trials proposed by Optuna and stopped by ASHA, their rows, progress and checkpoints."""
