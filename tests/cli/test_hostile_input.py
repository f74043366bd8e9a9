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
from numpy.lib import format as npy_format
from onnx import TensorProto, helper

from tlbench.cli.main import main
from tlbench.execution.results import read_result

from conftest import FAST_TRAIN, TOY_GRID, TOY_PLUGINS

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
    ("unknown domain", run("--target", "toy:c"), "unknown domain 'c' of dataset 'toy'; known: "),
    ("domain without dataset", run("--source", "toy"), "must be DATASET:DOMAIN"),
    ("unknown executor", run("--executor", "threads"), "unknown executor 'threads'"),
    ("unknown plugin in --set", run("--set", "dnn.weight=0.3"), "unknown plugin in `set` 'dnn'"),
    ("unknown plugin option", run("--set", "dann.wieght=0.3"), "has no option 'wieght'"),
    ("unknown train option", run("--set", "train.stepz=3"), "train has no option 'stepz'"),
    ("unknown flag", run("--bogus"), "unrecognized arguments: --bogus"),
    # incompatible combinations
    ("source equals target", run("--target", "toy:a"), "every source equals its target"),
    ("task transfer without target labels", run("--target", "digits:uci", "--shots", "0"), "task-transfer pair"),
    ("task transfer with a shared-label loss", run("--target", "digits:uci", "--loss", "dann"), "task-transfer pair"),
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
    # --- issue 16 -------------------------------------------------------------------------------
    # output paths, checked before any work
    ("results dir is a file", lambda d: [*TOY, "run", *CELL, "--results-dir", str(_write(d / "afile", "x"))],
     "is a file, not a directory"),
    ("results dir under a file", lambda d: [*TOY, "run", *CELL, "--results-dir", str(_write(d / "afile", "x") / "runs")],
     "is a file, not a directory"),
    ("results dir in /proc/version", lambda d: [*TOY, "run", *CELL, "--results-dir", "/proc/version/x"],
     "'/proc/version' is a file"),
    ("results dir not writable", lambda d: [*TOY, "run", *CELL, "--results-dir", "/proc/tlbench-x/runs"], "is not writable"),
    ("grid file results_dir is a file", lambda d: [*TOY, "run", "--grid", str(_write(
        d / "g.toml", f'results_dir = "{_write(d / "afile", "x")}"\n' + GOOD_GRID))], "results_dir"),
    ("leaderboard -o is a directory", lambda d: ["leaderboard", str(_board(d)), "--format", "csv", "-o", str(d)],
     "is a directory"),
    ("leaderboard -o under a file", lambda d: ["leaderboard", str(_board(d)), "-o", str(_write(d / "f", "x") / "o.csv")],
     "is a file, not a directory"),
    ("leaderboard -o in /proc/version", lambda d: ["leaderboard", str(_board(d)), "-o", "/proc/version/o.md"], "is a file"),
    ("leaderboard -o not writable", lambda d: ["leaderboard", str(_board(d)), "-o", "/proc/o.md"], "not writable"),
    ("--plot out.txt", lambda d: ["leaderboard", str(_board(d)), "--plot", str(d / "out.txt")],
     "is neither a .png file nor a directory"),
    ("--plot png under a file", lambda d: ["leaderboard", str(_board(d)), "--plot", str(_write(d / "f", "x") / "p.png")],
     "is a file, not a directory"),
    ("--plot dir/ under a file", lambda d: ["leaderboard", str(_board(d)), "--plot", str(_write(d / "f", "x")) + "/plots/"],
     "is a file, not a directory"),
    ("--plot png is a directory", lambda d: ["leaderboard", str(_board(d)), "--plot", str(_mkdir(d / "p.png"))],
     "is a directory"),
    ("--export-all is a file", lambda d: ["leaderboard", str(_board(d)), "--export-all", str(_write(d / "f", "x"))],
     "is a file, not a directory"),
    ("--export-all in /proc/version", lambda d: ["leaderboard", str(_board(d)), "--export-all", "/proc/version/out"],
     "is a file"),
    ("leaderboard --mlflow ftp", lambda d: ["leaderboard", str(_board(d)), "--mlflow", "ftp://nowhere"],
     "unsupported tracking URI scheme 'ftp://'"),
    ("export -o not .onnx", lambda d: ["export", str(d), "-o", str(d / "out.txt")], "must end in .onnx"),
    ("export -o is a directory", lambda d: ["export", str(d), "-o", str(_mkdir(d / "m.onnx"))], "is a directory"),
    ("export -o under a file", lambda d: ["export", str(d), "-o", str(_write(d / "f", "x") / "m.onnx")], "is a file"),
    ("export -o in /proc/version", lambda d: ["export", str(d), "-o", "/proc/version/m.onnx"], "is a file"),
    ("export of a folder without a run", lambda d: ["export", str(d)], "has no valid result.json"),
    # MLflow tracking URIs, checked before the grid runs
    ("--mlflow ftp", run("--mlflow", "ftp://nowhere"), "unsupported tracking URI scheme 'ftp://'"),
    ("--mlflow http without host", run("--mlflow", "http://"), "has no host"),
    ("--mlflow file store under a file", lambda d: [*TOY, "run", *CELL, "--results-dir", str(d / "runs"),
                                                    "--mlflow", f"file:{_write(d / 'f', 'x')}/store"], "is a file"),
    ("--mlflow store in /proc/version", run("--mlflow", "/proc/version/store"), "is a file"),
    # silently accepted before
    ("empty list item", run("--backbone", "smallcnn,,resnet18"), "has an empty item"),
    ("trailing comma", run("--strategy", "finetune,"), "--strategy 'finetune,' has an empty item"),
    ("empty item beside a class subset", run("--target", "toy:b[0,1],,toy:b"), "has an empty item"),
    ("--set for a loss not in the grid", run("--set", "dann.weight=0.3"),
     "is for adaptation loss 'dann', which is not in the grid; the grid's losses: none"),
    ("--set for a strategy not in the grid", run("--set", "l2sp.alpha=0.5"), "strategy 'l2sp', which is not in the grid"),
    ("--set for a backbone not in the grid", run("--set", "resnet18.input_size=64"), "backbone 'resnet18', which is not"),
    ("--set for a dataset not in the grid", run("--set", "synthdigits.seed=1"), "dataset 'synthdigits', which is not"),
    ("[set.loss.X] not in the grid", toml_run(GOOD_GRID + "[set.loss.mmd]\nweight = 0.5\n"), "which is not in the grid"),
    ("TLBENCH_LOAD_PLUGINS typo (run)", lambda d: ({"TLBENCH_LOAD_PLUGINS": "nosuch"}, [*TOY, "run", *CELL]),
     "TLBENCH_LOAD_PLUGINS names 'nosuch', which no installed plugin is called; plugins: "),
    ("TLBENCH_LOAD_PLUGINS typo (plugins)", lambda d: ({"TLBENCH_LOAD_PLUGINS": "smallcnn,smalcnn"}, ["plugins"]),
     "plugins: smallcnn"),
    ("TLBENCH_LOAD_PLUGINS empty", lambda d: ({"TLBENCH_LOAD_PLUGINS": ","}, ["plugins"]), "names no plugin"),
    ("unknown name from a broken plugin", lambda d: [*_plugin(d, "raise ImportError(\"No module named 'fancylib'\")",
                                                              "fancy_backbones"), "run", *CELL, "--backbone", "fancynet"],
     "may come from a plugin that failed to load: fancy_backbones (ImportError: No module named 'fancylib')"),
    ("unknown plugin NAME", lambda d: ["plugins", "smalcnn"], "unknown plugin 'smalcnn'; known: smallcnn"),
    ("plugins NAME of a broken plugin", lambda d: [*_plugin(d, "1/0", "zerodiv"), "plugins", "zerodiv"],
     "plugin 'zerodiv' failed to load: ZeroDivisionError"),
    ("--top-k 0", lambda d: ["predict", str(d / "m.onnx"), str(d / "x.npy"), "--top-k", "0"], "--top-k must be at least 1"),
    # unclear before
    ("unknown domain wording", run("--source", "digits:mnistt", "--target", "digits:uci"),
     "unknown domain 'mnistt' of dataset 'digits'; known: mnist, uci"),
    ("only unreadable results", lambda d: ["leaderboard", str(_board(d, good=0, bad=2))],
     "all 2 unreadable result.json file(s)"),
    ("no results at all", lambda d: ["leaderboard", str(_mkdir(d / "empty"))], "no result files"),
    # caught only during training before: backbone options and the backbone contract (dry run)
    ("smallcnn width 0", run("--set", "smallcnn.width=0"), "backbone 'smallcnn' option `width` = 0 is out of range"),
    ("smallcnn width negative", run("--set", "smallcnn.width=-4"), "backbone 'smallcnn' option `width` = -4 is out of range"),
    ("smallcnn width absurd", run("--set", "smallcnn.width=100000"), "is out of range; use 1..1024"),
    ("torchvision input_size negative", run("--backbone", "resnet18", "--set", "resnet18.input_size=-1"),
     "backbone 'resnet18' option `input_size` = -1 is out of range"),
    ("torchvision input_size tiny", run("--backbone", "resnet18", "--set", "resnet18.input_size=2"), "is out of range"),
    ("backbone returns the wrong shape", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "wrongshape"],
     "backbone 'wrongshape' returned shape (2, 10) but declares out_features=16"),
    ("backbone factory raises", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "cannotbuild"],
     "backbone 'cannotbuild' with options {} cannot be built"),
    ("backbone forward raises", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "mismatch"],
     "backbone 'mismatch' failed on a two-example batch"),
    ("backbone factory returns no module", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "notmodule"],
     "not an nn.Module"),
    ("backbone without out_features", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "nofeatures"],
     "has no positive integer `out_features`"),
    ("backbone ignores its input", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "ignores"],
     "returns the same features for different inputs"),
    ("backbone returns NaN", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "nanout"],
     "non-finite features"),
    ("dataset constructor crashes", lambda d: [*_plugin(d, CRASHING_DATASET, "crashing_data"), "run", *CELL,
                                               "--target", "crashy:x"], "dataset 'crashy' with options {} cannot be built"),
    ("backbone tuple output", lambda d: [*_plugin(d, BAD_BACKBONES), "run", *CELL, "--backbone", "tupleout"],
     "returned tuple, not a tensor"),
    ("image folder whose only image is text", lambda d: ["run", "--backbone", "smallcnn", "--source", "imagefolder:a",
                                                         "--target", "imagefolder:b", "--shots", "1",
                                                         "--data-root", str(_text_images(d)), "--results-dir", str(d / "runs")],
     "cannot read image"),
    # --- issue 27 -------------------------------------------------------------------------------
    # plugin options outside their declared ranges, refused before anything trains
    ("negative dann.weight", run("--loss", "dann", "--set", "dann.weight=-1"),
     "adaptation loss 'dann' option `weight` = -1.0 is out of range; use 0.0.."),
    ("zero dann.hidden", run("--loss", "dann", "--set", "dann.hidden=0"), "option `hidden` = 0 is out of range"),
    ("negative dann.hidden", run("--loss", "dann", "--set", "dann.hidden=-5"), "option `hidden` = -5 is out of range"),
    ("mmd kernel_num 0", run("--loss", "mmd", "--set", "mmd.kernel_num=0"), "option `kernel_num` = 0 is out of range"),
    ("negative l2sp.alpha", run("--strategy", "l2sp", "--set", "l2sp.alpha=-0.1"), "option `alpha` = -0.1 is out of range"),
    ("discriminative-lr decay above 1", run("--strategy", "discriminative-lr", "--set", "discriminative-lr.decay=3"),
     "option `decay` = 3.0 is out of range"),
    ("lstm pooling not a choice", run("--backbone", "lstm", "--set", "lstm.pooling=max"), "lstm"),
    ("negative entropy.diversity", run("--loss", "entropy", "--set", "entropy.diversity=-1"),
     "option `diversity` = -1.0 is out of range"),
    # search spaces outside the option's valid range, or for a plugin the grid does not use
    ("search lr choice 1000", toml_run(GOOD_GRID + "[search]\ntrials = 2\n[search.space.train]\n"
                                                   "lr = {choices = [0.001, 1000.0]}\n"), "1000.0"),
    ("search decay range 2..5", toml_run(GOOD_GRID.replace('"finetune"', '"discriminative-lr"') + "[search]\ntrials = 2\n"
                                         "[search.space.discriminative-lr]\ndecay = {low = 2.0, high = 5.0}\n"), "decay"),
    ("search train optimizer", toml_run(GOOD_GRID + "[search]\ntrials = 2\n[search.space.train]\n"
                                                    "optimizer = {choices = [\"sgd\", \"adam\"]}\n"),
     "train search space names no option 'optimizer'"),
    ("search optimizer lion", toml_run(GOOD_GRID.replace('["none"]', '["dann"]') + "[search]\ntrials = 2\n"
                                       "[search.space.dann]\noptimizer = {choices = [\"sgd\", \"lion\"]}\n"), "lion"),
    ("search space for an unused plugin", toml_run(GOOD_GRID.replace('["none"]', '["dann"]') + "[search]\ntrials = 2\n"
                                                   "[search.space.mmd]\nweight = {low = 0.1, high = 1.0}\n"), "mmd"),
    ("search space misspelt", toml_run(GOOD_GRID.replace('["none"]', '["dann"]') + "[search]\ntrials = 2\n"
                                       "[search.space.dan]\nweight = {low = 0.1, high = 1.0}\n"), "dann"),
    ("search space for an unknown option", toml_run(GOOD_GRID.replace('["none"]', '["dann"]') + "[search]\ntrials = 2\n"
                                                    "[search.space.dann]\nwieght = {low = 0.1, high = 1.0}\n"), "weight"),
    # tracebacks before
    ("deeply nested grid TOML", toml_run("a = " + "[" * 3000 + "]" * 3000 + "\n" + GOOD_GRID), "nests"),
    ("deeply nested --set", run("--set", "dann.weight=" + "[" * 3000 + "]" * 3000), "nests too deeply"),
    ("class subset with non-ASCII digits", run("--target", "toy:b[\u0661]"), "non-ASCII digits"),
    ("rank --shots 00", lambda d: [*TOY, "rank", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                                   "--shots", "00", "--results-dir", str(d / "runs")], "shots"),
    ("rank logme negative tol", lambda d: [*TOY, "rank", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                                           "--set", "logme.tol=-1", "--results-dir", str(d / "runs")],
     "estimator 'logme' option `tol` = -1.0 is out of range"),
    ("rank logme absurd max_iter", lambda d: [*TOY, "rank", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                                              "--set", "logme.max_iter=1000000000", "--results-dir", str(d / "runs")],
     "option `max_iter` = 1000000000 is out of range"),
    ("rank --estimators empty", lambda d: [*TOY, "rank", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                                           "--estimators", "", "--results-dir", str(d / "runs")], "--estimators is empty"),
    # late errors that were knowable at validation
    ("a device this machine lacks", run("--executor", "processes", "--devices", "cuda:7"), "cuda:7"),
    ("--device this machine lacks", run("--device", "cuda:7"), "cuda:7"),
    ("synthdigits cache under a regular file", lambda d: ({"TLBENCH_CACHE": str(_write(d / "afile", "x"))},
                                                         [*TOY, "run", *CELL, "--source", "synthdigits:clean",
                                                          "--target", "synthdigits:noisy", "--results-dir", str(d / "runs")]),
     "is not a directory"),
    ("results cache under a regular file", lambda d: [*TOY, "run", *CELL, "--results-dir",
                                                      str(_write(_mkdir(d / "runs") / ".cache", "x").parent)], ".cache"),
    # empty flag values are mistakes, not requests for the default
    ("empty --device", run("--device", ""), "--device is empty"),
    ("empty --threads", run("--threads", ""), "--threads is empty"),
    ("empty --grid", lambda d: [*TOY, "run", "--grid", ""], "--grid is empty"),
]


def _text_images(d):
    """Two image-folder domains whose only "image" per class is a text file named like a PNG."""
    for domain in ("a", "b"):
        for name in ("c1", "c2"):
            (d / "folders" / domain / name).mkdir(parents=True, exist_ok=True)
            (d / "folders" / domain / name / "0.png").write_text("not an image")
    return d / "folders"

BAD_BACKBONES = """
import torch
from torch import nn
from tlbench import hookimpl


class WrongShape(nn.Module):
    out_features = 16

    def __init__(self, input_shape):
        super().__init__()
        self.lin = nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], 10)

    def forward(self, x):
        return self.lin(x.flatten(1))


class Mismatch(nn.Module):
    out_features = 4

    def __init__(self, input_shape):
        super().__init__()
        self.lin = nn.Linear(10, 4)

    def forward(self, x):
        return self.lin(x.flatten(1))


class Ignores(nn.Module):
    def __init__(self, input_shape):
        super().__init__()
        self.out_features = 8
        self.p = nn.Parameter(torch.randn(8))

    def forward(self, x):
        return self.p.expand(len(x), -1) + 0 * x.flatten(1).sum(1, keepdim=True)


class NanOut(WrongShape):
    out_features = 10

    def forward(self, x):
        return self.lin(x.flatten(1)) * float("nan")


class TupleOut(WrongShape):
    out_features = 10

    def forward(self, x):
        return self.lin(x.flatten(1)), None


def cannot_build(input_shape):
    raise RuntimeError("expected 3 channels, got 1")


@hookimpl
def register_backbones(register):
    register("wrongshape", WrongShape, modality="image")
    register("mismatch", Mismatch, modality="image")
    register("ignores", Ignores, modality="image")
    register("nanout", NanOut, modality="image")
    register("tupleout", TupleOut, modality="image")
    register("cannotbuild", cannot_build, modality="image")
    register("notmodule", lambda input_shape: 3, modality="image")
    register("nofeatures", lambda input_shape: nn.Flatten(), modality="image")
"""

CRASHING_DATASET = """
from tlbench import hookimpl
from tlbench.plugin.contracts import Dataset


class Crashy(Dataset):
    domains = ("x",)
    classes = ("zero", "one", "two")

    def __init__(self):
        raise KeyError("config")


@hookimpl
def register_datasets(register):
    register("crashy", Crashy, domains=("x",), modality="image", num_classes=3, classes=Crashy.classes, label_space="toy3")
"""


def _plugin(d, source, name="hostile_backbones"):
    """A plugins folder holding one plugin module ``name`` with ``source``; returns the flag."""
    folder = _mkdir(d / "hostile_plugins")
    _write(folder / f"{name}.py", source)
    return [*TOY, "--plugins-dir", str(folder)]


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


VALID_RESULT = {"run_id": "r0", "backbone": "smallcnn", "source": "toy:a", "target": "toy:b", "strategy": "finetune",
                "loss": "none", "shots": 5, "seed": 0, "status": "ok", "target_acc": 0.5, "source_acc": 0.9}


def _board(d, good=1, bad=0):
    """A results folder with ``good`` valid and ``bad`` unreadable result.json files."""
    root = _mkdir(d / "board")
    for i in range(good):
        _write(_mkdir(root / f"ok{i}") / "result.json", json.dumps({**VALID_RESULT, "run_id": f"r{i}", "seed": i}))
    for i in range(bad):
        _write(_mkdir(root / f"bad{i}") / "result.json", '{"run_id": "trunc')
    return root


@pytest.mark.parametrize("build, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_code_2(build, fragment, tmp_path, capsys, monkeypatch):
    argv = build(tmp_path)
    if isinstance(argv, tuple):  # (environment, argv)
        for key, value in argv[0].items():
            monkeypatch.setenv(key, value)
        argv = argv[1]
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/result.json"))


def test_the_table_is_large_enough():
    assert len(CASES) + len(PREDICT_CASES) >= 60


# -- files written by a real run, then broken ------------------------------------------------

@pytest.fixture
def finished_run(toy_grid):
    """The session's finished toy grid (read-only: tests that break files copy it first)."""
    return toy_grid


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

    code = main([*map(str, TOY_GRID), "--results-dir", str(runs)])
    assert code == 0
    assert not marker.exists(), "a cached file was unpickled with code execution"
    assert not [path for path in stale if path.exists()], "stale temp files survived the rerun"
    assert isinstance(torch.load(cache, weights_only=True), dict)  # retrained and cached again
    for index, cell in enumerate(cells):
        after = read_result(cell / "result.json")
        rerun = (cell / "result.json").stat().st_mtime_ns != written[cell.name]
        assert after["status"] == "ok" and rerun == (index < 2), cell.name  # the two broken cells rerun, no other
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


def _png(width, height, body=b""):
    """PNG bytes with an 8-bit grey header of ``width`` x ``height`` (the pixel data need not fit)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def _truncated_png(path):
    from PIL import Image

    Image.fromarray((np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    return path


def _object_npy(path):
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


# (case id, argv after `predict` from (tmp dir, model path), fragment of the one-line message or None)
PREDICT_CASES = [
    ("text file posing as an image", lambda d, m: [m, _write(d / "cat.png", "not an image")], None),
    ("wrong-shape array", lambda d, m: [m, _save_npy(d / "x.npy", np.zeros((5,), np.float32))], None),
    ("missing input file", lambda d, m: [m, d / "nope.png"], None),
    ("model without tlbench metadata", lambda d, m: [_model_without_metadata(d / "plain.onnx"), _save_npy(d / "x.npy", np.zeros((1, 3), np.float32))], None),
    ("garbage model file", lambda d, m: [_write(d / "bad.onnx", b"\x00garbage"), _save_npy(d / "x.npy", np.zeros((1, 3), np.float32))], None),
    ("decompression bomb PNG", lambda d, m: [m, _write(d / "bomb.png", _png(30000, 30000))], "too large to decode safely"),
    ("decompression bomb warning PNG", lambda d, m: [m, _write(d / "big.png", _png(10000, 10000))],
     "decompression-bomb limit"),
    ("truncated PNG", lambda d, m: [m, _truncated_png(d / "cut.png")], "not a readable image"),
    ("empty PNG file", lambda d, m: [m, _write(d / "empty.png", b"")], "not a readable image"),
    ("NaN in the array", lambda d, m: [m, _save_npy(d / "nan.npy", np.full((1, 8, 8), np.nan, np.float32))],
     "NaN or infinite value(s)"),
    ("inf in the array", lambda d, m: [m, _save_npy(d / "inf.npy", np.full((2, 1, 8, 8), np.inf, np.float32))],
     "NaN or infinite value(s)"),
    ("huge finite values", lambda d, m: [m, _save_npy(d / "huge.npy", np.full((1, 1, 8, 8), 3e38, np.float32))],
     "non-finite outputs"),
    ("pickled object array", lambda d, m: [m, _object_npy(d / "obj.npy")], "is not a readable .npy array"),
    ("text array", lambda d, m: [m, _save_npy(d / "s.npy", np.array(["a", "b"]))], "the model needs numbers"),
    # issue 27: a header that claims 10**11 values (373 GiB) in a file of a few bytes; an .npz passed as .npy
    ("forged .npy header", lambda d, m: [m, _forged_npy(d / "forged.npy", (10**11,))], "truncated or forged"),
    ("npz passed as npy", lambda d, m: [m, _npz_as_npy(d / "two.npy")], "an .npz archive"),
]


def _forged_npy(path, shape):
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        npy_format.write_array_header_1_0(handle, header)
        handle.write(np.zeros(4, np.float32).tobytes())
    return path


def _npz_as_npy(path):
    with open(path, "wb") as handle:
        np.savez(handle, a=np.zeros((1, 1, 8, 8), np.float32), b=np.ones(3))
    return path


def _save_npy(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize("build, fragment", [c[1:] for c in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES])
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_predict_on_bad_input_is_one_line(build, fragment, as_json, finished_run, tmp_path, capsys):
    model = next(finished_run.glob("*/model.onnx"))
    code = main(["predict", *map(str, build(tmp_path, model)), *(["--json"] if as_json else [])])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment is None or fragment in lines[0], lines[0]
    assert "Traceback" not in out + err and "NaN" not in out


# -- issue 27: files a finished run holds are never overwritten, hand-edited options are refused --

def test_leaderboard_output_onto_a_runs_result_is_refused(finished_run, capsys):
    result = next(finished_run.glob("*/result.json"))
    before = result.read_bytes()
    code = main(["leaderboard", str(finished_run), "--format", "json", "-o", str(result)])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "result.json" in lines[0], err
    assert result.read_bytes() == before


def test_export_of_a_run_with_wrongly_typed_backbone_options_is_one_line(finished_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(next(finished_run.glob("*/result.json")).parent, run_dir)
    record = json.loads((run_dir / "result.json").read_text())
    record["backbone_options"] = {"width": "wide"}
    (run_dir / "result.json").write_text(json.dumps(record))
    code = main([*TOY, "export", str(run_dir), "--output", str(tmp_path / "out.onnx"), "--no-int8"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "width" in lines[0], err
    assert "Traceback" not in out + err and not (tmp_path / "out.onnx").exists()


# -- issue 16: what a finished run leaves and how the CLI talks about it ---------------------

def test_model_files_are_written_like_normal_files(finished_run):
    """model.onnx / model.pt / result.json get 0666 minus the umask (0644 under umask 022), as
    model.int8.onnx always did, not mkstemp's 0600."""
    from tlbench.utils.atomic import current_umask

    expected = 0o666 & ~current_umask()
    run_dir = next(finished_run.glob("*/model.onnx")).parent
    for name in ("model.onnx", "model.pt", "result.json"):
        assert (run_dir / name).stat().st_mode & 0o777 == expected, name


def test_a_broken_plugin_is_one_warning_line_on_run(finished_run, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(finished_run, runs)
    broken = _plugin(tmp_path, "raise ImportError(\"No module named 'fancylib'\")", "fancy_backbones")
    code = main([*broken, "run", *CELL, "--strategy", "finetune,scratch", "--results-dir", str(runs), *FAST])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "fancy_backbones (ImportError: No module named 'fancylib')" in warnings[0], err


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_predict_into_a_closed_pipe_exits_quietly(finished_run, tmp_path, as_json):
    import subprocess
    import sys

    model = next(finished_run.glob("*/model.onnx"))
    batch = _save_npy(tmp_path / "many.npy", np.random.default_rng(0).normal(size=(1500, 1, 8, 8)).astype(np.float32))
    command = f"{sys.executable} -m tlbench.cli.main predict {model} {batch} {'--json' if as_json else ''} 2>err.txt | head -1"
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    err = (tmp_path / "err.txt").read_text()
    assert done.stdout.strip(), done
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
