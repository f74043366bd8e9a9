"""First-party executors: local (in-process), processes (worker pool), ray (cluster)."""
