"""Task transfer: class subsets, different label spaces, pretrained sources, the transfer kind."""

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.execution.cell_data import restrict
from tlbench.grid import expand
from tlbench.grid.domains import parse_domain, resolve_subset
from tlbench.plugin.contracts import Split
from tlbench.plugin.errors import UserError

TASK = {"backbone": ["smallcnn"], "source": ["digits:mnist[0-4]"], "target": ["digits:uci[5-9]"],
        "strategy": ["finetune"], "loss": ["none"], "shots": [3], "seeds": [0]}
FAST = [*FAST_TRAIN, "--set", "train.int8=false"]


def test_class_subsets_parse_and_relabel():
    classes = tuple(str(i) for i in range(10))
    assert resolve_subset(parse_domain("digits:uci[5-9]"), classes) == (5, 6, 7, 8, 9)
    assert resolve_subset(parse_domain("digits:uci[9,2,4-5]"), classes) == (9, 2, 4, 5)  # order as given
    assert resolve_subset(parse_domain("digits:uci"), classes) is None
    split = Split(torch.arange(10.0)[:, None], torch.tensor([0, 9, 2, 5, 4, 9, 1, 2, 3, 5]))
    kept = restrict(split, (9, 2, 4, 5))
    assert kept.y.tolist() == [0, 1, 3, 2, 0, 1, 3] and kept.x[:, 0].tolist() == [1, 2, 3, 4, 5, 7, 9]


def test_pair_kinds_and_what_a_task_pair_refuses(registry):
    (task,) = expand(TASK, registry)
    (same,) = expand({**TASK, "source": ["digits:mnist"], "target": ["digits:uci"]}, registry)
    (subset_da,) = expand({**TASK, "source": ["digits:mnist[0-4]"], "target": ["digits:uci[0-4]"]}, registry)
    assert (task.kind, same.kind, subset_da.kind) == ("task-transfer", "domain-adaptation", "domain-adaptation")
    for change, message in [
        ({"shots": [0]}, "is a task-transfer pair (their classes differ): the target's new head needs target labels"),
        ({"loss": ["dann"]}, "loss 'dann' needs a label space shared by source and target; use --loss none"),
        ({"strategy": ["instance-weighting"]}, "strategy 'instance-weighting' trains the target head on source labels"),
        ({"train": {"model_selection": "source-val"}}, "model_selection = source-val scores the target head"),
        ({"source": ["pretrained"]}, "source `pretrained` needs pretrained weights, but backbone 'smallcnn'"),
        ({"source": ["pretrained"], "backbone": ["efficientnet_lite0"], "loss": ["mmd"]}, "loss 'mmd' aligns source with target"),
        ({"target": ["digits:uci[5-10]"]}, "class range '5-10' is outside 0-9"),
    ]:
        with pytest.raises(UserError) as info:
            expand({**TASK, **change}, registry)
        assert message in str(info.value) and "\n" not in str(info.value)


def test_task_transfer_cell_exports_the_targets_classes(tmp_path):
    out = tmp_path / "runs"
    proc = run_cli("run", "--backbone", "smallcnn", "--source", "digits:mnist[0-4]", "--target", "digits:uci[7,5,9]",
                   "--strategy", "finetune,multitask", "--loss", "none", "--shots", "3", "--results-dir", out, *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = read_results(out)
    assert {r["status"] for r in results} == {"ok"} and {r["transfer_kind"] for r in results} == {"task-transfer"}
    for result in results:
        assert result["target_classes"] == ["7", "5", "9"] and result["source_classes"] == ["0", "1", "2", "3", "4"]
        assert result["source_acc"] is None  # the target head on source digits would mean nothing
        model = onnx.load(out / next(p.name for p in out.iterdir() if p.name.endswith(result["run_id"])) / "model.onnx")
        meta = {p.key: p.value for p in model.metadata_props}
        assert json.loads(meta["tlbench.labels"]) == ["7", "5", "9"]
        assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 3
    (cache,) = (out / ".cache" / "sources").glob("*.pt")  # one source model, with the source task's 5-way head
    assert torch.load(cache, weights_only=True)["head.weight"].shape[0] == 5
    board = run_cli("leaderboard", out, "--format", "md")
    assert "digits:mnist[0-4] -> digits:uci[7,5,9] (task transfer)" in board.stdout


def test_pretrained_source_trains_nothing_and_records_its_weights(tmp_path):
    out = tmp_path / "runs"
    proc = run_cli("run", "--backbone", "efficientnet_lite0", "--source", "pretrained", "--target", "digits:uci[0-2]",
                   "--strategy", "linear-probe", "--loss", "none", "--shots", "2", "--results-dir", out, *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok" and result["transfer_kind"] == "pretrained"
    assert result["source_weights"].startswith("imagenet:") and result["source_train_seconds"] == 0.0
    assert not (out / ".cache" / "sources").exists() or not list((out / ".cache" / "sources").glob("*.pt"))
    assert "trained source model" not in proc.stdout


def _folders(root, layout):
    from PIL import Image

    rng = np.random.default_rng(0)
    for domain, classes in layout.items():
        for name in classes:
            (root / domain / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / domain / name / f"{i}.png")


def test_imagefolder_domains_with_different_classes_are_a_task_pair(tmp_path):
    _folders(tmp_path / "data", {"a": ("c1", "c2"), "b": ("c3", "c4")})
    args = ["run", "--backbone", "smallcnn", "--source", "imagefolder:a", "--target", "imagefolder:b", "--strategy", "finetune",
            "--loss", "none", "--data-root", tmp_path / "data", "--set", "imagefolder.size=16", "--results-dir", tmp_path / "runs"]
    refused = run_cli(*args, "--shots", "0", *FAST)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "task-transfer pair" in refused.stderr
    ran = run_cli(*args, "--shots", "2", *FAST)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (result,) = read_results(tmp_path / "runs")
    assert result["target_classes"] == ["c3", "c4"] and result["source_classes"] == ["c1", "c2"]


def _fake_cifar(root, per_class=2):
    """Tiny files in torchvision's CIFAR-10 / CIFAR-100 python layouts."""
    import pickle

    rng = np.random.default_rng(0)

    def dump(path, labels, key):
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        path.write_bytes(pickle.dumps({"data": data, key: list(labels)}))

    ten = [c for c in range(10) for _ in range(per_class)]
    for i in range(1, 6):
        dump(root / "cifar-10-batches-py" / f"data_batch_{i}", ten, "labels")
    dump(root / "cifar-10-batches-py" / "test_batch", ten, "labels")
    hundred = [c for c in range(100) for _ in range(per_class)]
    dump(root / "cifar-100-python" / "train", hundred, "fine_labels")
    dump(root / "cifar-100-python" / "test", hundred, "fine_labels")
    names = [f"class{i:02d}" for i in range(100)]
    (root / "cifar-100-python" / "meta").write_bytes(pickle.dumps({"fine_label_names": names}))


@pytest.mark.slow
def test_cifar10_to_cifar100_example_grid_runs_on_tiny_files(tmp_path):
    from pathlib import Path

    _fake_cifar(tmp_path / "data")
    grid = Path(__file__).resolve().parents[2] / "examples" / "cifar10_to_cifar100.toml"
    out = tmp_path / "runs"
    proc = run_cli("run", "--grid", grid, "--data-root", tmp_path / "data", "--strategy", "finetune",
                   "--shots", "1", "--seeds", "0", "--results-dir", out, *FAST,
                   # the example's batch 128 through a full-resolution resnet18 stem is what costs here
                   "--set", "train.batch_size=16", "--set", "train.bn_recalibration_batches=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok" and result["transfer_kind"] == "task-transfer"
    assert len(result["target_classes"]) == 100 and len(result["source_classes"]) == 9
    assert result["target_labeled_examples"] == 100


def test_timm_backbone_with_a_checkpoint_is_a_pretrained_source(registry, tmp_path):
    timm = pytest.importorskip("timm")
    path = tmp_path / "weights.pt"
    torch.save(timm.create_model("resnet18", num_classes=0, in_chans=1).state_dict(), path)
    config = {**TASK, "backbone": ["timm-resnet18"], "source": ["pretrained"], "strategy": ["linear-probe"]}
    with pytest.raises(UserError, match="needs pretrained weights, but backbone 'timm-resnet18'"):
        expand(config, registry)
    (spec,) = expand({**config, "set": {"timm-resnet18": {"checkpoint": str(path)}}}, registry)
    assert spec.kind == "pretrained"
