"""Issue 16 beyond the hostile-input table: messages that name what is wrong, the --plot rule,
`tlbench plugins` at 80 columns and per plugin, strict JSON, file modes, the dry run's cost."""

import json
import os
import stat

import pytest
import torch

from tlbench.cli.main import main
from tlbench.plugin.errors import UserError

from conftest import TOY_PLUGINS, run_cli

RESULT = {"run_id": "r0", "backbone": "smallcnn", "source": "toy:a", "target": "toy:b", "strategy": "finetune",
          "loss": "none", "shots": 5, "seed": 0, "status": "ok", "target_acc": 0.5, "source_acc": 0.9}


def _board(root, good=1, bad=0):
    for i in range(good):
        (root / f"ok{i}").mkdir(parents=True)
        (root / f"ok{i}" / "result.json").write_text(json.dumps({**RESULT, "run_id": f"r{i}", "seed": i}))
    for i in range(bad):
        (root / f"bad{i}").mkdir(parents=True)
        (root / f"bad{i}" / "result.json").write_text("{not json")
    return root


# -- NonFiniteLoss names the term -----------------------------------------------------------------

def test_non_finite_loss_names_the_non_finite_term():
    from tlbench.plugin.contracts import Phase
    from tlbench.training.loop import NonFiniteLoss, fit

    model = torch.nn.Linear(2, 2)
    x = torch.ones(4, 2)

    def objective(progress):
        return {"target_ce": model(x).pow(2).mean(), "source_ce": model(x).abs().mean(),
                "adaptation": model(x).sum() * float("nan")}, 4

    with pytest.raises(NonFiniteLoss) as info:
        fit(model, [Phase("finetune", [{"params": list(model.parameters()), "lr": 0.1}], 3)], objective)
    message = str(info.value)
    assert "non-finite term adaptation=nan" in message and "target_ce=" not in message, message
    assert "\n" not in message


# -- leaderboard: unreadable files are counted --------------------------------------------------

def test_leaderboard_says_how_many_files_it_skipped(tmp_path, capsys):
    runs = _board(tmp_path / "runs", good=2, bad=3)
    code = main(["leaderboard", str(runs), "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warning: skipped 3 unreadable result.json file(s)" in err and "not valid JSON" in err
    assert len(err.strip().splitlines()) == 1 and out.count("\n") >= 2


def test_leaderboard_table_to_a_file(tmp_path, capsys):
    runs = _board(tmp_path / "runs")
    out_file = tmp_path / "new" / "board.txt"
    assert main(["leaderboard", str(runs), "-o", str(out_file)]) == 0
    assert "smallcnn" in out_file.read_text() and "\x1b[" not in out_file.read_text()
    assert capsys.readouterr().out == ""


# -- --plot: one rule, stated in --help ----------------------------------------------------------

def test_plot_rule_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["leaderboard", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "ending in .png" in text and "ending in '/'" in text and "anything else is an error" in text


@pytest.mark.parametrize("make", ["slash", "existing"])
def test_plot_directory_forms_write_every_plot(tmp_path, make):
    runs = _board(tmp_path / "runs")
    target = tmp_path / "plots"
    if make == "existing":
        target.mkdir()
        arg = str(target)
    else:
        arg = str(target) + "/"
    assert main(["leaderboard", str(runs), "--plot", arg, "--format", "csv"]) == 0
    assert {p.name for p in target.iterdir()} == {"accuracy_vs_shots.png", "accuracy_vs_latency.png", "best_gain_heatmap.png",
                                                       "robust_iqm.png"}


def test_plot_out_txt_creates_nothing(tmp_path):
    runs = _board(tmp_path / "runs")
    assert main(["leaderboard", str(runs), "--plot", str(tmp_path / "out.txt")]) == 2
    assert not (tmp_path / "out.txt").exists()


# -- MLflow URIs ----------------------------------------------------------------------------------

def test_tracking_uri_check():
    pytest.importorskip("mlflow")
    from tlbench.report.tracking import check_tracking_uri

    assert check_tracking_uri(None) is None
    assert check_tracking_uri("file:/tmp/store") == "/tmp/store"
    assert check_tracking_uri("file:///tmp/store") == "/tmp/store"
    assert check_tracking_uri("relative/store") == "relative/store"
    assert check_tracking_uri("http://localhost:5000") is None
    assert check_tracking_uri("databricks") is None
    for bad in ("ftp://nowhere", "s3://bucket/x", "https://"):
        with pytest.raises(UserError):
            check_tracking_uri(bad)


# -- atomic writes: modes like a normal file -------------------------------------------------------

def test_atomic_write_gives_normal_file_modes(tmp_path):
    from tlbench.utils.atomic import atomic_write_bytes

    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640
    finally:
        os.umask(old)
    atomic_write_bytes(tmp_path / "b.bin", b"x")
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o666 & ~old
    os.chmod(tmp_path / "b.bin", 0o600)  # an existing file keeps its mode, as open(..., "w") would
    atomic_write_bytes(tmp_path / "b.bin", b"y")
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o600


# -- tlbench plugins ----------------------------------------------------------------------------

def test_plugins_list_fits_80_columns_without_truncated_names():
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "plugins", env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in proc.stdout
    listed = json.loads(run_cli("--plugins-dir", TOY_PLUGINS, "plugins", "--json").stdout)
    for kind in ("backbones", "datasets", "strategies", "adaptation_losses", "executors"):
        for entry in listed[kind]:
            assert any(line.startswith(f"│ {entry['name']} ") for line in lines), entry["name"]


def test_plugins_name_shows_options_defaults_and_description():
    proc = run_cli("plugins", "l2sp", env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "l2sp (strategy) from plugin" in proc.stdout and "alpha" in proc.stdout and "0.1" in proc.stdout
    assert "--set l2sp.OPTION=VALUE" in proc.stdout
    detail = json.loads(run_cli("plugins", "dann", "--json").stdout)
    assert detail["kind"] == "adaptation loss" and detail["options"]["weight"] == {"default": 1.0, "type": "float", "range": [0.0, 1000000.0]}
    assert detail["options"]["lr"]["recipe"] is True and detail["description"]
    backbone = json.loads(run_cli("plugins", "smallcnn", "--json").stdout)
    assert backbone["options"]["width"]["default"] == 32 and backbone["meta"]["modality"] == "image"


def test_plugins_name_shows_a_declared_search_space(tmp_path):
    (tmp_path / "spaced.py").write_text(
        "from tlbench import hookimpl\n"
        "from tlbench.plugin.contracts import AdaptationLoss\n"
        "class Spaced(AdaptationLoss):\n"
        "    '''A loss with a search space.'''\n"
        "    defaults = {'weight': 1.0}\n"
        "    search_space = {'weight': [0.1, 1.0]}\n"
        "    def forward(self, batch):\n"
        "        return None\n"
        "@hookimpl\n"
        "def register_adaptation_losses(register):\n"
        "    register('spaced', Spaced)\n"
    )
    detail = json.loads(run_cli("--plugins-dir", tmp_path, "plugins", "spaced", "--json").stdout)
    assert detail["search_space"] == {"weight": [0.1, 1.0]} and detail["doc"] == "A loss with a search space."


# -- the dry run: once per backbone configuration, no side effects ---------------------------------

COUNTING = """
from torch import nn
from tlbench import hookimpl

BUILT = []


class Counted(nn.Module):
    out_features = 4

    def __init__(self, input_shape, width: int = 4):
        super().__init__()
        BUILT.append((tuple(input_shape), width))
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(4))

    def forward(self, x):
        return self.net(x)


@hookimpl
def register_backbones(register):
    register("counted", Counted, modality="image", defaults={"width": 4})
"""


def test_dry_run_builds_each_backbone_configuration_once_and_keeps_the_rng(tmp_path):
    import sys

    from tlbench.grid import expand
    from tlbench.plugin.discovery import load_plugins

    (tmp_path / "counting.py").write_text(COUNTING)
    registry = load_plugins([TOY_PLUGINS, tmp_path])[1]
    built = sys.modules["tlbench_local_plugin_counting"].BUILT
    grid = {"backbone": ["counted"], "source": ["toy:a", "toy:b"], "target": ["toy:b", "toy:a"],
            "strategy": ["finetune", "scratch"], "loss": ["none"], "shots": [1, 5], "seeds": [0, 1]}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    specs = expand(grid, registry)
    assert torch.equal(torch.rand(3), expected), "the dry run moved the global RNG"
    assert len(specs) == 16 and built == [((1, 8, 8), 4)]
    expand(grid, registry)
    assert len(built) == 1  # cached for the process
    expand({**grid, "set": {"counted": {"width": 8}}}, registry)
    assert built[-1] == ((1, 8, 8), 8) and len(built) == 2


def test_plugins_name_says_where_validator_and_estimator_options_apply():
    validator = run_cli("plugins", "dev", env={**os.environ, "COLUMNS": "120"}).stdout
    assert "dev (validator)" in validator and "cannot be set" in validator and "--set dev." not in validator
    estimator = run_cli("plugins", "knn", env={**os.environ, "COLUMNS": "120"}).stdout
    assert "knn (estimator)" in estimator and "tlbench rank --set knn.OPTION=VALUE" in estimator
