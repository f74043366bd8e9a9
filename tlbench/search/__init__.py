"""Hyperparameter search: search spaces -> Optuna-sampled trials (normal grid cells), and the
validators that score them. Import the modules themselves; this package's top stays empty so
the runner can use :mod:`tlbench.search.scoring` without pulling in Optuna."""
