"""The model side: cleaning, vectorising, the RNN classifier and its training loop (no Ray here but trainable.py)."""
