"""The study side: the `study.run` CLI, orchestration with Ray Tune, results, reports."""
