"""The final stage: the search's top configurations and the baselines under one cross-validation rule."""
