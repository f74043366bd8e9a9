"""Hostile input: every bad grid, flag, file or model gives exit code 2 and one line, no traceback;
corrupted or hand-edited cache and result files are detected and recomputed, never unpickled."""

import io
import json
import pickle
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tlbench.cli.main import main
from tlbench.execution.results import read_result

from conftest import FAST_TRAIN, TOY_PLUGINS

TOY = ["--plugins-dir", str(TOY_PLUGINS)]
CELL = ["--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b", "--shots", "5", "--seeds", "0"]
FAST = [*FAST_TRAIN, "--set", "train.int8=false", "--threads", "1"]


def grid_file(text):
    """Write ``text`` as a grid file in the case's folder and return ``--grid PATH``."""
    return lambda d: ["--grid", str(_write(d / "grid.toml", text))]


def _write(path, text):
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def run(*extra):
    return lambda d: [*TOY, "run", *CELL, "--results-dir", str(d / "runs"), *extra]


GOOD_GRID = (
    'backbone = ["smallcnn"]\nsource = ["toy:a"]\ntarget = ["toy:b"]\nstrategy = ["finetune"]\n'
    'loss = ["none"]\nshots = [5]\nseeds = [0]\n'
)


def toml_run(text):
    """A grid file case (toy plugins loaded)."""
    return lambda d: [*TOY, "run", "--grid", str(_write(d / "grid.toml", text)), "--results-dir", str(d / "runs")]


# (case id, argv builder taking a tmp dir, a fragment the one-line message must contain)
CASES = [
    # names that do not exist
    ("unknown backbone", run("--backbone", "resnet1800"), "unknown backbone 'resnet1800'"),
    ("unknown strategy", run("--strategy", "finetuning"), "unknown strategy 'finetuning'; known: finetune"),
    ("unknown loss", run("--loss", "dan"), "unknown adaptation loss 'dan'"),
    ("unknown dataset", run("--source", "toys:a"), "unknown dataset 'toys'"),
    ("unknown domain", run("--target", "toy:c"), "domain of dataset 'toy'"),
    ("domain without dataset", run("--source", "toy"), "must be DATASET:DOMAIN"),
    ("unknown executor", run("--executor", "threads"), "unknown executor 'threads'"),
    ("unknown plugin in --set", run("--set", "dnn.weight=0.3"), "unknown plugin in `set` 'dnn'"),
    ("unknown plugin option", run("--set", "dann.wieght=0.3"), "has no option 'wieght'"),
    ("unknown train option", run("--set", "train.stepz=3"), "train has no option 'stepz'"),
    ("unknown flag", run("--bogus"), "unrecognized arguments: --bogus"),
    # incompatible combinations
    ("source equals target", run("--target", "toy:a"), "every source equals its target"),
    ("incompatible label spaces", run("--target", "digits:uci"), "do not share a label space"),
    ("image dataset, sequence backbone", run("--backbone", "lstm"), "takes sequence input"),
    ("workers for the local executor", run("--workers", "2"), "executor 'local' does not take `workers`"),
    ("ray address for processes", run("--executor", "processes", "--ray-address", "auto"), "does not take `ray-address`"),
    # wrong types, empty lists, absurd numbers
    ("negative shots", run("--shots", "-1"), "shots -1 is out of range"),
    ("absurd shots", run("--shots", "99999999999"), "is out of range"),
    ("shots not a number", run("--shots", "many"), "shots 'many' is not a whole number"),
    ("fractional seed", run("--seeds", "1.5"), "seed '1.5' is not a whole number"),
    ("negative seed", run("--seeds", "-3"), "seed -3 is out of range"),
    ("empty backbone list", run("--backbone", ","), "--backbone is empty"),
    ("--set without a dot", run("--set", "steps=3"), "must look like NAME.PARAM=VALUE"),
    ("train steps not a number", run("--set", "train.steps=abc"), "train option `steps` must be int"),
    ("negative steps", run("--set", "train.steps=-5"), "train option `steps` = -5 is out of range"),
    ("absurd learning rate", run("--set", "train.lr=1e9"), "train option `lr` = 1000000000.0 is out of range"),
    ("nan learning rate", run("--set", "train.lr=nan"), "must be finite"),
    ("bool for a float option", run("--set", "dann.weight=true"), "must be float"),
    ("zero workers", run("--executor", "processes", "--workers", "0"), "workers = 0 is out of range"),
    ("absurd workers", run("--executor", "processes", "--workers", "100000"), "workers = 100000 is out of range"),
    ("workers not a number", run("--executor", "processes", "--workers", "lots"), "workers must be a whole number"),
    ("bad device name", run("--executor", "processes", "--devices", "gpu0"), "device 'gpu0' in devices is not cpu"),
    ("zero threads", run("--threads", "0"), "threads = 0 is out of range"),
    # files
    ("missing grid file", lambda d: [*TOY, "run", "--grid", str(d / "nope.toml")], "does not exist"),
    ("grid path is a folder", lambda d: [*TOY, "run", "--grid", str(d)], "cannot read grid file"),
    ("grid file not UTF-8", toml_run(b"backbone = ['\xff\xfe']\n"), "cannot read grid file"),
    ("malformed TOML", toml_run('backbone = ["smallcnn"\n'), "is not valid TOML"),
    ("unknown grid key", toml_run(GOOD_GRID + "epochs = 3\n"), "unknown grid key 'epochs'"),
    ("backbone not a name", toml_run(GOOD_GRID.replace('["smallcnn"]', "3")), "must list names"),
    ("empty strategy list", toml_run(GOOD_GRID.replace('["finetune"]', "[]")), "`strategy` is an empty list"),
    ("strategy as a table", toml_run(GOOD_GRID.replace('strategy = ["finetune"]\n', "") + "[strategy]\nx = 1\n"),
     "must be a list"),
    ("train not a table", toml_run("train = 5\n" + GOOD_GRID), "train must be a table"),
    ("set not a table", toml_run("set = 5\n" + GOOD_GRID), "`set` must be a table"),
    ("executor not a name", toml_run("executor = 5\n" + GOOD_GRID), "executor must be a name"),
    ("empty devices list", toml_run('executor = "processes"\ndevices = []\n' + GOOD_GRID), "devices must be a non-empty list"),
    ("workers as bool", toml_run('executor = "processes"\nworkers = true\n' + GOOD_GRID), "workers must be a whole number"),
    ("results_dir not a path", lambda d: [*TOY, "run", "--grid", str(_write(d / "g.toml", "results_dir = 5\n" + GOOD_GRID))],
     "results_dir must be a directory path"),
    ("missing plugins dir", lambda d: ["--plugins-dir", str(d / "nope"), "plugins"], "is not a directory"),
    ("nothing to run", lambda d: ["run"], "nothing to run"),
    ("leaderboard of a missing dir", lambda d: ["leaderboard", str(d / "nope")], "does not exist"),
]


@pytest.mark.parametrize("build, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(build, fragment, tmp_path, capsys):
    code = main([str(a) for a in build(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/result.json"))


def test_the_table_is_large_enough():
    assert len(CASES) >= 30


# -- files written by a real run, then broken ------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished toy grid of two cells."""
    root = tmp_path_factory.mktemp("hostile")
    runs = root / "runs"
    code = main([*TOY, "run", *CELL, "--strategy", "finetune,scratch", "--results-dir", str(runs), *FAST])
    assert code == 0
    return runs


class _Boom:
    """A pickle that would create a file if it were ever unpickled with code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_corrupted_results_models_and_cache_are_recomputed_never_unpickled(finished_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(finished_run, runs)
    cells = sorted(p.parent for p in runs.glob("*/result.json"))
    before = {p.name: read_result(p / "result.json") for p in cells}
    written = {p.name: (p / "result.json").stat().st_mtime_ns for p in cells}
    # 1. a truncated result, 2. a model.onnx cut short behind an ok result
    text = (cells[0] / "result.json").read_text()
    (cells[0] / "result.json").write_text(text[: len(text) // 2])
    onnx_bytes = (cells[1] / "model.onnx").read_bytes()
    (cells[1] / "model.onnx").write_bytes(onnx_bytes[:100])
    # 3. the cached source model replaced by a pickle that runs code when unpickled
    cache = next((runs / ".cache" / "sources").glob("*.pt"))
    marker = tmp_path / "unpickled"
    buffer = io.BytesIO()
    pickle.dump({"weight": _Boom(marker)}, buffer)
    cache.write_bytes(buffer.getvalue())
    # 4. temp files a writer killed mid-write leaves behind (atomic_write_bytes' naming)
    stale = [cells[0] / ".result.json.k1ll3d.tmp", cells[1] / ".model.onnx.k1ll3d.tmp",
             cache.parent / f".{cache.name}.k1ll3d.tmp"]
    for path in stale:
        path.write_bytes(b"half")

    code = main([*TOY, "run", *CELL, "--strategy", "finetune,scratch", "--results-dir", str(runs), *FAST])
    assert code == 0
    assert not marker.exists(), "a cached file was unpickled with code execution"
    assert not [path for path in stale if path.exists()], "stale temp files survived the rerun"
    assert isinstance(torch.load(cache, weights_only=True), dict)  # retrained and cached again
    for cell in cells:
        after = read_result(cell / "result.json")
        assert after["status"] == "ok" and (cell / "result.json").stat().st_mtime_ns != written[cell.name]  # rerun
        assert after["target_acc"] == before[cell.name]["target_acc"]
        onnx.checker.check_model(str(cell / "model.onnx"))


def test_hand_edited_result_is_not_trusted(finished_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(finished_run, runs)
    path = sorted(runs.glob("*/result.json"))[0]
    record = json.loads(path.read_text())
    record["target_acc"] = "99%"  # wrong type: schema check rejects it
    path.write_text(json.dumps(record))
    assert read_result(path) is None
    from tlbench.execution.results import finished_run_ids

    assert record["run_id"] not in finished_run_ids(runs)


# -- tlbench predict on things that are not what it needs ------------------------------------

def _model_without_metadata(path):
    node = helper.make_node("Identity", ["input"], ["logits"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])])
    onnx.save(helper.make_model(graph), str(path))
    return path


PREDICT_CASES = [
    ("text file posing as an image", lambda d, m: [m, _write(d / "cat.png", "not an image")]),
    ("wrong-shape array", lambda d, m: [m, _save_npy(d / "x.npy", np.zeros((5,), np.float32))]),
    ("missing input file", lambda d, m: [m, d / "nope.png"]),
    ("model without tlbench metadata", lambda d, m: [_model_without_metadata(d / "plain.onnx"), _save_npy(d / "x.npy", np.zeros((1, 3), np.float32))]),
    ("garbage model file", lambda d, m: [_write(d / "bad.onnx", b"\x00garbage"), _save_npy(d / "x.npy", np.zeros((1, 3), np.float32))]),
]


def _save_npy(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize("build", [c[1] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES])
def test_predict_on_bad_input_is_one_line(build, finished_run, tmp_path, capsys):
    model = next(finished_run.glob("*/model.onnx"))
    code = main(["predict", *map(str, build(tmp_path, model))])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
