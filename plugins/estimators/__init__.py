"""First-party transferability estimators: LogME, LEEP, NCE, H-score and a kNN probe."""
