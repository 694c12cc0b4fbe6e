"""A study's data: its settings read into labelled, unlabelled and test rows, and their summary for the report."""
