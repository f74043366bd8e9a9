import pytest

from tlbench.plugin.errors import UserError
from tlbench.grid import expand, merge_config, parse_set, read_grid_file

from conftest import run_cli

BASE = {
    "backbone": ["smallcnn", "resnet18"],
    "source": ["digits:mnist", "digits:uci"],
    "target": ["digits:mnist", "digits:uci"],
    "strategy": ["scratch", "finetune"],
    "loss": ["none", "dann"],
    "shots": [10],
    "seeds": [0, 1],
}


def test_cartesian_expansion_skips_same_domain_pairs(registry):
    specs = expand(BASE, registry)
    assert len(specs) == 2 * 2 * 2 * 2 * 1 * 2  # backbones x pairs x strategies x losses x shots x seeds
    assert all(s.source != s.target for s in specs)
    assert len({s.run_id for s in specs}) == len(specs)


def test_run_id_is_stable_and_depends_on_options(registry):
    a = expand(BASE, registry)[0]
    b = expand(dict(BASE), registry)[0]
    assert a.run_id == b.run_id
    c = expand({**BASE, "set": {"dann": {"weight": 0.5}}, "loss": ["dann"]}, registry)[0]
    d = expand({**BASE, "loss": ["dann"]}, registry)[0]
    assert c.loss_options["weight"] == 0.5 and c.run_id != d.run_id
    e = expand({**BASE, "train": {"steps": 7}}, registry)[0]
    assert e.run_id != a.run_id


def test_recipe_keys_at_their_defaults_keep_run_ids(registry):
    """Recipe settings added later leave run ids alone at their defaults; changing one changes it."""
    plain = expand(BASE, registry)[0]
    same = expand({**BASE, "train": {"optimizer": "adam", "schedule": "constant", "weight_decay": 0.0}}, registry)[0]
    other = expand({**BASE, "train": {"schedule": "cosine"}}, registry)[0]
    assert plain.run_id == same.run_id != other.run_id
    assert plain.source_key() == same.source_key() != other.source_key()  # source pretraining follows [train]
    dann = expand({**BASE, "loss": ["dann"]}, registry)[0]
    faster = expand({**BASE, "loss": ["dann"], "set": {"dann": {"lr": 0.02}}}, registry)[0]
    assert dann.run_id != faster.run_id and dann.source_key() == faster.source_key()  # a loss's recipe: transfer only


def test_shots_all_and_zero(registry):
    specs = expand({**BASE, "shots": ["all", 0, "5"]}, registry)
    assert {s.shots for s in specs} == {"all", 0, 5}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backbone": ["smalcnn"]}, "unknown backbone 'smalcnn'; known: smallcnn, "),
        ({"strategy": ["finetuned"]}, "unknown strategy 'finetuned'; known: finetune"),
        ({"loss": ["dann2"]}, "unknown adaptation loss 'dann2'; known: dann, "),
        ({"source": ["digits:svhn"]}, "unknown domain 'svhn' of dataset 'digits'"),
        ({"source": ["digitz:mnist"]}, "unknown dataset 'digitz'; known: digits"),
        ({"source": ["mnist"]}, "must be DATASET:DOMAIN"),
        ({"source": ["toy:a"]}, "is a task-transfer pair (their classes differ): loss 'dann' needs a label space shared"),
        ({"shots": [-1]}, "out of range"),
        ({"shots": ["many"]}, "not a whole number or 'all'"),
        ({"seeds": [1.5]}, "not a whole number"),
        ({"seeds": []}, "empty list"),
        ({"backbone": "smallcnn", "bogus": 1}, "unknown grid key 'bogus'"),
        ({"train": {"steps": -3}}, "out of range"),
        ({"train": {"stepz": 3}}, "train has no option 'stepz'; known: steps"),
        ({"train": {"lr": "fast"}}, "must be float"),
        ({"set": {"dann": {"hiden": 3}}}, "has no option 'hiden'; known: hidden"),
        ({"set": {"nosuch": {"x": 1}}}, "unknown plugin in `set` 'nosuch'"),
        ({"source": ["digits:mnist"], "target": ["digits:mnist"]}, "no source->target pair"),
        ({"train": {"optimizer": "rmsprop"}}, "train option `optimizer` = 'rmsprop' is not one of adam, adamw, sgd"),
        ({"train": {"schedule": "linear"}}, "is not one of constant, cosine, step, inverse"),
        ({"train": {"warmup": 1.5}}, "train option `warmup` = 1.5 is out of range; use 0.0..1.0"),
        ({"train": {"bn_recalibration_batches": -1}}, "out of range"),
        ({"set": {"dann": {"optimizer": "lion"}}}, "loss 'dann' option `optimizer` = 'lion' is not one of"),
        ({"set": {"dann": {"momentum": 2.0}}}, "loss 'dann' option `momentum` = 2.0 is out of range"),
        ({"set": {"dann": {"lr": -0.1}}}, "loss 'dann' option `lr` = -0.1 is out of range"),
    ],
)
def test_validation_errors_are_clear(registry, change, message):
    with pytest.raises(UserError) as info:
        expand({**BASE, **change}, registry)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_set_types():
    assert parse_set(["l2sp.alpha=0.01", "train.steps=5", "x.flag=true", "x.name=abc"]) == {
        "l2sp": {"alpha": 0.01},
        "train": {"steps": 5},
        "x": {"flag": True, "name": "abc"},
    }
    with pytest.raises(UserError, match="NAME.PARAM=VALUE"):
        parse_set(["alpha"])


def test_flags_override_file_and_tables_merge():
    merged = merge_config({"shots": [1], "train": {"steps": 5, "lr": 0.1}}, {"shots": [2], "train": {"steps": 9}})
    assert merged == {"shots": [2], "train": {"steps": 9, "lr": 0.1}}


def test_grid_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_grid_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("backbone = [")
    with pytest.raises(UserError, match="not valid TOML"):
        read_grid_file(bad)


def test_default_grid_is_valid_and_covers_the_promise(registry):
    from tlbench.grid import default_grid_path

    specs = expand(read_grid_file(default_grid_path()), registry)
    assert {s.backbone for s in specs} == {"smallcnn", "resnet18"}
    assert {(s.source, s.target) for s in specs} == {("digits:mnist", "digits:uci")}
    assert {s.strategy for s in specs} == {"scratch", "linear-probe", "finetune"}
    assert {s.loss for s in specs} == {"none", "dann"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--backbone", "resnet19", "--source", "digits:mnist", "--target", "digits:uci"], "unknown backbone 'resnet19'; known: resnet18"),
        (["run", "--grid", "/nonexistent.toml"], "does not exist"),
        (["run"], "nothing to run"),
        (["run", "--bogus"], "unrecognized arguments"),
        (["run", "--backbone", "smallcnn", "--source", "digits:mnist", "--target", "digits:uci", "--shots", ","], "--shots is empty"),
        (["run", "--backbone", "smallcnn", "--source", "digits:mnist", "--target", "digits:uci", "--device", "tpu"], "not a device name"),
        (["leaderboard", "/nonexistent-dir"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
