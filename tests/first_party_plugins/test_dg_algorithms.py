"""Domain-generalisation algorithms: each objective against a formula written out here, the
per-domain sampling, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.plugin.contracts import AdaptationBatch, Split, TransferContext
from tlbench.plugin.errors import UserError

PLUGINS = Path(__file__).resolve().parents[1] / "plugins_domains"
DG_LOSSES = ("erm", "irm", "vrex", "groupdro", "mixup", "coral-dg", "mmd-dg", "dann-dg")


def _ctx(domains=("x:a", "x:b"), steps=10):
    split = Split(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 0, 1, 1]))
    return TransferContext(None, split, None, torch.zeros(0, 3), 3, 0, steps, 1e-3, 4, torch.device("cpu"),
                           torch.Generator().manual_seed(0), lambda x: x, source_domains=domains)


def _batch(logits, labels, domains, progress=0.9, features=None, inputs=None, model=None):
    features = logits if features is None else features
    empty = features[:0]
    return AdaptationBatch(features, logits, empty, empty, empty, model, lambda x: x, progress,
                           inputs, domains, labels)


def _loss(registry, name, **options):
    loss = registry.get("adaptation_losses", name).obj(**options)
    loss.setup(3, 3, _ctx())
    return loss


def _scale_gradient(logits, labels):
    """d/ds CE(s * z, y) at s = 1, by hand: mean over rows of sum_k p_k z_k - z_y."""
    p = logits.softmax(1)
    return ((p * logits).sum(1) - logits.gather(1, labels[:, None]).squeeze(1)).mean()


def test_irm_penalty_is_the_product_of_the_two_halves_scale_gradients(registry):
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(12, 3, generator=g), torch.randint(0, 3, (12,), generator=g)
    domains = torch.tensor([0] * 6 + [1] * 6)
    expected = torch.stack([_scale_gradient(logits[r][0::2], labels[r][0::2]) * _scale_gradient(logits[r][1::2], labels[r][1::2])
                            for r in (slice(0, 6), slice(6, 12))]).mean()
    irm = _loss(registry, "irm", weight=100.0, anneal_steps=5)
    late = irm(_batch(logits, labels, domains, progress=0.9))  # step 9 >= 5: the penalty itself
    assert torch.allclose(late, expected, atol=1e-6)
    early = irm(_batch(logits, labels, domains, progress=0.1))  # step 1 < 5: weighted 1 once the loop applies 100
    assert torch.allclose(early * irm.weight, expected, atol=1e-6)


def test_vrex_is_the_variance_of_the_domain_risks(registry):
    g = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(9, 3, generator=g), torch.randint(0, 3, (9,), generator=g)
    domains = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0, 1])
    risks = [F.cross_entropy(logits[domains == d], labels[domains == d]).item() for d in (0, 1)]
    expected = ((risks[0] - risks[1]) / 2) ** 2  # two risks: variance = (half their difference)^2
    vrex = _loss(registry, "vrex", anneal_steps=0)
    assert vrex(_batch(logits, labels, domains)).item() == pytest.approx(expected, rel=1e-5)


def test_groupdro_moves_weight_to_the_worst_domain(registry):
    logits = torch.tensor([[4.0, 0, 0], [4.0, 0, 0], [0, 0, 0], [0, 0, 0]])
    labels = torch.tensor([0, 0, 1, 1])  # domain 0 is fitted, domain 1 is not
    domains = torch.tensor([0, 0, 1, 1])
    dro = _loss(registry, "groupdro", eta=0.5)
    risks = torch.tensor([F.cross_entropy(logits[:2], labels[:2]).item(), F.cross_entropy(logits[2:], labels[2:]).item()])
    q = torch.tensor([0.5, 0.5]) * torch.exp(0.5 * risks)
    q = q / q.sum()
    value = dro(_batch(logits, labels, domains))
    assert value.item() == pytest.approx(float((q * risks).sum()), rel=1e-5)
    assert dro.q[1] > dro.q[0] and dro.q.sum().item() == pytest.approx(1.0)


def test_mixup_trains_on_mixed_inputs_with_both_labels(registry):
    import numpy as np

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    inputs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels, domains = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    value = _loss(registry, "mixup", alpha=0.2)(_batch(model(inputs), labels, domains, inputs=inputs, model=model))
    # the same draws by hand: the context's generator seeds the Beta sampler, then orders the domains
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
    order = torch.randperm(2, generator=g).tolist()
    rows = {0: slice(0, 2), 1: slice(2, 4)}
    expected = []
    for a, b in zip(order, order[1:] + order[:1]):
        lam = float(rng.beta(0.2, 0.2))
        logits = model(lam * inputs[rows[a]] + (1 - lam) * inputs[rows[b]])
        expected.append(lam * F.cross_entropy(logits, labels[rows[a]]) + (1 - lam) * F.cross_entropy(logits, labels[rows[b]]))
    assert value.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-6)


def test_pairwise_alignment_is_zero_for_identical_domains_and_grows_apart(registry):
    base = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    same = torch.cat([base, base])
    apart = torch.cat([base, base + 3.0])
    domains = torch.tensor([0] * 8 + [1] * 8)
    labels = torch.zeros(16, dtype=torch.long)
    for name in ("coral-dg", "mmd-dg"):
        loss = _loss(registry, name)
        assert loss(_batch(same, labels, domains)).item() == pytest.approx(0.0, abs=1e-5), name
        assert loss(_batch(apart, labels, domains)).item() > 0.1, name


def test_the_domain_sampler_draws_a_batch_from_every_domain():
    from tlbench.training.data import DomainSampler

    domains = torch.tensor([0] * 5 + [1] * 9 + [2] * 3)
    sampler = DomainSampler(domains, 3, torch.Generator().manual_seed(0))
    seen = {0: [], 1: [], 2: []}
    for _ in range(6):
        index = sampler.next_index()
        assert domains[index].tolist() == [0] * 3 + [1] * 3 + [2] * 3
        for d in seen:
            seen[d] += index[domains[index] == d].tolist()
    assert sorted(seen[2][:3]) == [14, 15, 16]  # a pass over a domain holds each of its rows once


def test_every_algorithm_trains_a_domain_generalisation_cell(tmp_path):
    got = run_cli("--plugins-dir", PLUGINS, "run", "--backbone", "smallcnn", "--source", "three:a+three:b", "--target", "three:c",
                  "--strategy", "scratch", "--loss", ",".join(DG_LOSSES), "--shots", "0", "--seeds", "0", "--threads", "1",
                  "--set", "train.target_inputs=withheld", *FAST_TRAIN, "--results-dir", tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    records = {r["loss"]: r for r in read_results(tmp_path)}
    assert set(records) == set(DG_LOSSES) and {r["status"] for r in records.values()} == {"ok"}
    assert {r["transfer_kind"] for r in records.values()} == {"domain-generalisation"}
    assert "adaptation" not in records["erm"]["final_loss_terms"]  # the control: the loop alone
    assert "source" in records["groupdro"]["final_loss_terms"] and "source_ce" not in records["groupdro"]["final_loss_terms"]
    assert "adaptation" in records["irm"]["final_loss_terms"] and "source_ce" in records["irm"]["final_loss_terms"]


def test_algorithms_that_compare_domains_refuse_a_single_source(registry):
    from tlbench.grid import expand

    base = {"backbone": ["smallcnn"], "strategy": ["scratch"], "shots": [0], "seeds": [0], "target": ["digits:uci"]}
    with pytest.raises(UserError, match="irm.*at least 2.*digits:mnist.*has 1"):
        expand({**base, "source": ["digits:mnist"], "loss": ["irm"]}, registry)
    assert expand({**base, "source": ["digits:mnist"], "loss": ["erm"]}, registry)  # erm needs one


def test_the_oracle_beside_an_honest_rule_changes_nothing_it_reports(tmp_path):
    """train.selection_oracle scores the same checkpoints with target test accuracy and records
    the oracle's pick; the reported model (checkpoint, accuracy, predictions) stays the same."""
    common = ["--plugins-dir", PLUGINS, "run", "--backbone", "smallcnn", "--source", "three:a+three:b", "--target", "three:c",
              "--strategy", "scratch", "--loss", "erm", "--shots", "0", "--seeds", "0", "--threads", "1",
              "--set", "train.target_inputs=withheld", *FAST_TRAIN, "--set", "train.steps=12",
              "--set", "train.model_selection=source-val", "--set", "train.selection_every=3"]
    records = {}
    for flag in ("false", "true"):
        got = run_cli(*common, "--set", f"train.selection_oracle={flag}", "--results-dir", tmp_path / flag)
        assert got.returncode == 0, got.stdout + got.stderr
        (records[flag],) = read_results(tmp_path / flag)
    plain, beside = records["false"], records["true"]
    assert "oracle_selection" not in plain
    assert beside["run_id"] == plain["run_id"]  # a reporting switch: the same cell
    for key in ("selected_step", "selection_score", "target_acc"):
        assert beside[key] == plain[key], key
    oracle = beside["oracle_selection"]
    steps = [s for s, _ in oracle["checkpoints"]]
    assert steps == [3, 6, 9, 12] and oracle["step"] in steps
    assert oracle["target_acc"] == max(v for _, v in oracle["checkpoints"]) >= oracle["at_selected_step"]
    assert all(0.0 <= v <= 1.0 and abs(v * 30 - round(v * 30)) < 1e-4 for _, v in oracle["checkpoints"])  # accuracies on 30 test rows
