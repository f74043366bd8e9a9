"""The Python API for notebooks and scripts: ``tlbench.run_grid`` and ``tlbench.load_results``.

    import tlbench
    results = tlbench.run_grid({"backbone": ["smallcnn"], "source": ["digits:mnist"], "target": ["digits:uci"],
                                "strategy": ["finetune"], "loss": ["none", "dann"], "shots": [10], "seeds": [0]},
                               results_dir="results/notebook")
    results.to_pandas()          # the CSV export's columns, one row per configuration
    tlbench.load_results("results/default-grid/runs").runs[0]["target_acc"]

Both take the same keys as a grid file and run through the same validation, executors and
resume rules as ``tlbench run``; bad input raises :class:`tlbench.UserError` with the CLI's line.
"""

from tlbench.api.results import Results, load_results
from tlbench.api.runs import run_grid

__all__ = ["Results", "load_results", "run_grid"]
