"""Design-space search: spaces, operator scheduling, the WHAM critical-path heuristic,
top-k/global search, Optuna searchers and baselines."""
