"""The ``tlbench`` command line: ``run | plugins | leaderboard | predict | export``."""
