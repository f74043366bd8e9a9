"""DomainBed's MNIST datasets, ``--leave-one-out`` and the held-out-domain table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.plugin.errors import UserError

PLUGINS = Path(__file__).resolve().parents[1] / "plugins_domains"


def test_rotated_environments_hold_different_images_turned_by_their_angle():
    from torchvision.transforms.v2.functional import InterpolationMode, rotate

    from tlbench_plugins.datasets import domainbed_mnist as dm
    from tlbench_plugins.datasets.digits import MEAN, STD

    dealt = [dm._dealt(6, i) for i in range(6)]
    assert sum(len(d) for _, d in dealt) == 5000  # every image once
    first, last = dealt[0][0], dealt[5][0]
    assert not any(torch.equal(first[0], img) for img in last)  # different images per environment
    data = dm.RotatedMNIST().load("75")
    turned = torch.cat([data.train.x, data.test.x]) * STD + MEAN
    assert len(turned) == len(last)
    # order within an environment is the split's; match each image by turning the raw ones ourselves
    from tlbench_plugins.datasets.digits import SPLIT_SEED, TEST_FRACTION, stratified_split

    train_idx, test_idx = stratified_split(dealt[5][1], TEST_FRACTION, SPLIT_SEED)
    raw = last[torch.from_numpy(np.concatenate([train_idx, test_idx]))]
    back = rotate(turned, -75.0, interpolation=InterpolationMode.BILINEAR)
    unturned_error = (turned - raw).abs().mean()
    assert (back - raw).abs().mean() < 0.5 * unturned_error  # turned by +75 degrees, not -75 or 0
    zero = dm.RotatedMNIST().load("0")
    assert zero.train.x.shape[1:] == (1, 28, 28) and int(zero.train.y.max()) == 9


@pytest.mark.parametrize("env,agree", [("+90%", 0.9), ("+80%", 0.8), ("-90%", 0.1)])
def test_colored_environments_tie_colour_to_the_label_as_documented(env, agree):
    from tlbench_plugins.datasets import domainbed_mnist as dm
    from tlbench_plugins.datasets.digits import MEAN, STD

    data = dm.ColoredMNIST().load(env)
    x = torch.cat([data.train.x, data.test.x]) * STD + MEAN
    y = torch.cat([data.train.y, data.test.y])
    assert x.shape[1:] == (2, 28, 28) and set(y.tolist()) == {0, 1}
    ink = x.clamp(min=0).sum(dim=(2, 3))
    colour = (ink[:, 1] > ink[:, 0]).long()  # the channel the digit is drawn in
    assert ((ink.min(dim=1).values < 1e-3).float().mean()) == 1.0  # one channel is empty
    assert abs(float((colour == y).float().mean()) - agree) < 0.04
    _, digits = dm._dealt(3, list(dm.COLOUR_FLIP).index(env))
    from tlbench_plugins.datasets.digits import SPLIT_SEED, TEST_FRACTION, stratified_split

    train_idx, test_idx = stratified_split(digits, TEST_FRACTION, SPLIT_SEED)
    shape_label = torch.from_numpy((digits[np.concatenate([train_idx, test_idx])] >= 5).astype(np.int64))
    assert abs(float((shape_label == y).float().mean()) - 0.75) < 0.04  # 25 % label noise


def test_leave_one_out_makes_every_all_others_to_one_cell(registry):
    from tlbench.grid import expand

    base = {"backbone": ["smallcnn"], "strategy": ["finetune"], "loss": ["none"], "shots": [0], "seeds": [0]}
    specs = expand({**base, "leave_one_out": "rotatedmnist"}, registry)
    angles = ("0", "15", "30", "45", "60", "75")
    assert sorted(s.target for s in specs) == sorted(f"rotatedmnist:{a}" for a in angles)
    for spec in specs:
        held = spec.target.split(":")[1]
        assert spec.source.split("+") == sorted(f"rotatedmnist:{a}" for a in angles if a != held)
        assert spec.kind == "domain-generalisation" and spec.train.target_inputs == "withheld"
    shots = expand({**base, "shots": [5], "leave_one_out": "coloredmnist"}, registry)
    assert len(shots) == 3 and {s.kind for s in shots} == {"domain-adaptation"}  # target labels asked for
    for bad, says in (({"leave_one_out": "nosuch"}, "nosuch"), ({"leave_one_out": "digits", "source": ["digits:mnist"]}, "drop")):
        with pytest.raises(UserError, match=says):
            expand({**base, **bad}, registry)


def test_coloured_domain_names_with_plus_signs_join_as_sources():
    from tlbench.grid.domains import canonical_source, source_parts

    assert source_parts("coloredmnist:+90%+coloredmnist:-90%") == ["coloredmnist:+90%", "coloredmnist:-90%"]
    assert canonical_source("coloredmnist:-90%+coloredmnist:+80%") == "coloredmnist:+80%+coloredmnist:-90%"


def test_the_leaderboard_shows_domainbeds_table_shape(tmp_path):
    out = tmp_path / "runs"
    got = run_cli("--plugins-dir", PLUGINS, "run", "--backbone", "smallcnn", "--leave-one-out", "three", "--loss", "none",
                  "--strategy", "finetune", "--shots", "0", "--seeds", "0,1", "--threads", "1", *FAST_TRAIN, "--results-dir", out)
    assert got.returncode == 0, got.stdout + got.stderr
    records = read_results(out)
    assert len(records) == 6 and {r["transfer_kind"] for r in records} == {"domain-generalisation"}
    board = run_cli("--plugins-dir", PLUGINS, "leaderboard", "--format", "md", out).stdout
    lines = [line for line in board.splitlines() if line.startswith("| ") and "Avg" in line or line.startswith("| smallcnn | finetune | none | 0 | last |")]
    header, row = lines[0], lines[1]
    assert header.split("|")[6:10] == [" a ", " b ", " c ", " Avg "]
    accs = {}
    for r in records:
        accs.setdefault(r["target"].split(":")[1], []).append(r["target_acc"])
    expected = [100 * np.mean(accs[d]) for d in "abc"]  # computed here from result.json
    cells = [c.strip() for c in row.split("|")[6:10]]
    assert [float(c.split(" ± ")[0]) for c in cells[:3]] == pytest.approx(expected, abs=0.051)
    assert float(cells[3]) == pytest.approx(np.mean(expected), abs=0.051)
