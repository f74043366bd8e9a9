"""Estimators see the labeled shots (or the train split), never the target test split; a grid cell
records the same scores `tlbench rank` computes, once per source model, and never fails for them."""

import pytest

from conftest import TOY_PLUGINS
from tlbench.execution.runner import Runner
from tlbench.grid import expand
from tlbench.plugin.discovery import load_plugins
from tlbench.transferability.rank import Candidate, candidate_specs, rank_candidates
from tlbench.transferability.scoring import build_estimators, estimator_names

MARKED = '''
import torch

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split


class Marked(Dataset):
    """Three classes of blobs; `poison` rewrites the labels of one split: test or train."""

    domains = ("b",)
    classes = ("zero", "one", "two")

    def __init__(self, poison: str = "none"):
        self.poison = poison
        self.preprocessing = Preprocessing(IMAGE, (1, 8, 8), (0.5,), (0.25,))

    def load(self, domain):
        g = torch.Generator().manual_seed(2)
        y = torch.arange(120) % 3
        x = torch.randn(120, 1, 8, 8, generator=g) * 0.5
        for c in range(3):
            x[y == c, :, 2 * c:2 * c + 3, 2:6] += 2.0
        train, test = Split(x[:90], y[:90].clone()), Split(x[90:], y[90:].clone())
        if self.poison == "test":
            test.y = torch.randint(0, 3, (len(test.y),), generator=g)
        if self.poison == "train":
            train.y = (train.y + torch.arange(90) % 2) % 3
        return DomainData(train, test)


@hookimpl
def register_datasets(register):
    register("marked", Marked, domains=Marked.domains, modality=IMAGE, num_classes=3, defaults={"poison": "none"})
'''
TRAIN = {"source_epochs": 1.0, "steps": 2, "latency_repeats": 1, "export_dynamo": False, "int8": False,
         "bn_recalibration_batches": 1}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "marked.py").write_text(MARKED)
    return load_plugins([TOY_PLUGINS, plugins])[1]


@pytest.fixture
def setup(registry, tmp_path):
    """The registry and a runner with its own, empty results directory (source models, score cache)."""
    return registry, Runner(registry, tmp_path / "runs", "cpu", log=lambda message: None)


def ranked(registry, runner, poison: str, shots=5) -> dict:
    config = {"train": TRAIN, "set": {"marked": {"poison": poison}}}
    pairs, _ = candidate_specs([Candidate("smallcnn", "toy:a")], "marked:b", shots, 0, config, registry)
    estimators = build_estimators(registry, estimator_names(registry))
    return rank_candidates(runner, pairs, estimators, "logme")[0]["scores"]


def cell(registry, poison: str, strategy="finetune") -> object:
    config = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["marked:b"], "strategy": [strategy],
              "loss": ["none"], "shots": [5], "seeds": [0], "train": TRAIN, "set": {"marked": {"poison": poison}}}
    return expand(config, registry)[0]


@pytest.mark.parametrize("shots", [5, "all"])
def test_poisoned_test_labels_leave_every_rank_score_unchanged(setup, shots):
    registry, runner = setup
    clean = ranked(registry, runner, "none", shots)
    # plain H-score refuses fewer labeled examples than feature dimensions (it would be classes - 1 for any model)
    assert all(value is not None for name, value in clean.items() if name != "hscore"), clean
    assert ranked(registry, runner, "test", shots) == clean
    # the scores do read labels: poisoned TRAIN labels change them
    assert ranked(registry, runner, "train", shots)["logme"] != clean["logme"]


def test_grid_cells_record_the_rank_scores_and_ignore_test_labels(setup):
    registry, runner = setup
    clean = runner.run(cell(registry, "none"))
    assert clean["status"] == "ok", clean["error"]
    record = clean["transferability"]
    assert record["examples"] == 15 and record["cached"] is False and record["source_predictions"] is True
    assert record["scores"] == ranked(registry, runner, "none")  # the same examples rank scores
    poisoned = runner.run(cell(registry, "test"))
    assert poisoned["status"] == "ok" and poisoned["transferability"]["scores"] == record["scores"]
    # another cell of the same source model and target: the cached record, not a recomputation
    other = runner.run(cell(registry, "none", strategy="linear-probe"))
    assert other["transferability"]["cached"] is True and other["transferability"]["scores"] == record["scores"]


def test_a_failure_in_the_estimators_never_fails_the_cell(setup, monkeypatch):
    registry, runner = setup
    from tlbench.transferability import cell as cell_module

    def broken(*args, **kwargs):
        raise RuntimeError("estimators exploded")

    monkeypatch.setattr(cell_module, "scores_for", broken)
    result = runner.run(cell(registry, "none", strategy="scratch"))
    assert result["status"] == "ok"
    assert result["transferability"] == {"error": "RuntimeError: estimators exploded"}
