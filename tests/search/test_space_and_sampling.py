"""Search spaces are validated in one line; the same search seed samples the same trials; TPE
replays recorded results to the same configurations."""

import re

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tlbench.grid import expand
from tlbench.plugin.errors import UserError
from tlbench.search.sampling import PENDING, sample_configs
from tlbench.search.space import declared_space, parse_space
from tlbench.search.trials import expand_search, search_settings
from tlbench.settings import SearchSettings

from conftest import TOY_PLUGINS, run_cli

DEFAULTS = {"weight": 1.0, "hidden": 256, "mode": "mean", "flag": True}
BASE = {"backbone": ["smallcnn"], "source": ["toy:a"], "target": ["toy:b"], "strategy": ["finetune"],
        "loss": ["dann", "control"], "shots": [0], "seeds": [0, 1]}


def test_a_valid_space_becomes_optuna_distributions():
    space = parse_space("loss 'x'", {"weight": {"low": 0.01, "high": 10, "log": True}, "hidden": {"low": 64, "high": 512, "step": 64},
                                     "mode": ["mean", "sum"], "flag": {"choices": [True, False]}}, DEFAULTS)
    assert space["weight"] == FloatDistribution(0.01, 10.0, log=True)
    assert space["hidden"] == IntDistribution(64, 512, step=64)
    assert space["mode"] == CategoricalDistribution(["mean", "sum"])
    assert isinstance(space["flag"], CategoricalDistribution)


@pytest.mark.parametrize("space, message", [
    ({"wieght": {"low": 0.1, "high": 1.0}}, "names no option 'wieght'; options: weight"),
    ({"weight": {"low": 1.0, "high": 0.1}}, "low 1.0 must be below high 0.1"),
    ({"weight": {"low": 0.0, "high": 1.0, "log": True}}, "a log scale needs low > 0"),
    ({"weight": {"low": 0.1}}, "needs low and high"),
    ({"weight": {"low": 0.1, "high": 1.0, "scale": "log"}}, "has no setting 'scale'"),
    ({"hidden": {"low": 1.5, "high": 8}}, "needs whole low, high and step"),
    ({"mode": {"low": 1, "high": 2}}, "takes choices"),
    ({"hidden": {"choices": ["a"]}}, "choice 'a' is not a int"),
    ({"weight": {"choices": []}}, "non-empty list"),
    ({"weight": 0.5}, "must be a table"),
])
def test_invalid_spaces_are_one_line_errors(space, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as info:
        parse_space("loss 'x'", space, DEFAULTS)
    assert "\n" not in str(info.value)


def test_every_first_party_search_space_is_valid(registry):
    declared = 0
    for kind in ("strategies", "adaptation_losses"):
        for entry in registry.entries[kind].values():
            space = declared_space(entry)
            if space is not None:
                assert parse_space(entry.name, space, entry.defaults)
                declared += 1
    assert declared >= 6  # dann, cdan, mmd, coral, entropy, control, contrastive


@pytest.mark.parametrize("search, message", [
    ({"trials": 0}, "search option `trials` = 0 is out of range; use 1..10000"),
    ({"trials": 2, "sampler": "grid"}, "search option `sampler` = 'grid' is not one of random, tpe"),
    ({"trials": 2, "sede": 1}, "search has no option 'sede'; known: seed"),
    ({"trials": 2, "defaults_first": "yes"}, "search option `defaults_first` must be true or false, got 'yes'"),
    ({"trials": 2, "objective": "accuracy"}, "unknown validator 'accuracy'"),
])
def test_bad_search_tables_are_one_line_errors(registry, search, message):
    with pytest.raises(UserError, match=re.escape(message)):
        search_settings({"search": search}, registry)


def test_search_settings_validate_on_construction_like_the_table():
    with pytest.raises(UserError) as built:
        SearchSettings(startup=0)
    with pytest.raises(UserError) as read:
        search_settings({"search": {"startup": 0}}, None)
    assert str(built.value) == str(read.value) == "search option `startup` = 0 is out of range; use 1..10000"


def test_same_seed_same_configurations_and_trial_zero_is_the_defaults(registry):
    config = {**BASE, "search": {"trials": 4, "seed": 3}}
    specs = expand(config, registry)
    first, again = expand_search(config, registry, specs), expand_search(config, registry, expand(config, registry))
    assert [s.run_id for s in first] == [s.run_id for s in again]
    assert len(first) == 2 * 4 * 2 and len({s.run_id for s in first}) == 16  # groups x trials x seeds, all distinct
    dann = [s for s in first if s.loss == "dann" and s.seed == 0]
    assert dann[0].trial["defaults"] and dann[0].loss_options["weight"] == 1.0 and dann[0].loss_options["lr"] == 0.001
    assert len({s.loss_options["weight"] for s in dann}) == 4 and all(0.1 <= s.loss_options["weight"] <= 10 for s in dann)
    seed1 = [s for s in first if s.loss == "dann" and s.seed == 1]
    assert [s.loss_options for s in seed1] == [s.loss_options for s in dann]  # every seed repeats the same trials
    other = expand_search({**config, "search": {"trials": 4, "seed": 4}}, registry, specs)
    assert [s.loss_options for s in other if s.loss == "dann"][1:4] != [s.loss_options for s in dann][1:4]
    assert {s.run_id for s in specs}.isdisjoint({s.run_id for s in first})


def test_fixed_options_and_searched_train_keys(registry):
    config = {**BASE, "loss": ["dann"], "set": {"dann": {"weight": 0.3}},
              "search": {"trials": 3, "space": {"train": {"weight_decay": {"low": 1e-5, "high": 1e-2, "log": True}}}}}
    trials = expand_search(config, registry, expand(config, registry))
    assert all(s.loss_options["weight"] == 0.3 for s in trials)  # set by the user: not searched
    assert all("dann.weight" not in s.trial["params"] for s in trials)
    assert len({s.trial["train"]["weight_decay"] for s in trials}) == 3
    assert all(s.train == trials[0].train for s in trials)  # the source model's settings are shared
    with pytest.raises(UserError, match="train search space names no option 'steps'"):
        expand_search({**config, "search": {"trials": 2, "space": {"train": {"steps": {"low": 1, "high": 9}}}}},
                      registry, expand(config, registry))


def test_random_search_with_one_plugin_without_a_space_runs_one_trial(registry):
    config = {**BASE, "loss": ["none"], "search": {"trials": 5}}
    trials = expand_search(config, registry, expand(config, registry))
    assert len(trials) == 2 and all(s.trial["index"] == 0 for s in trials)  # one trial per seed


def test_tpe_replays_recorded_values_to_the_same_configurations():
    space = {"x": FloatDistribution(-3.0, 3.0), "k": IntDistribution(1, 4)}
    objective = lambda params: -(params["x"] - 1.0) ** 2 + 0.1 * params["k"]  # noqa: E731
    values: dict[int, float] = {}

    def value_of(index, params):
        return values.get(index, PENDING)

    rounds = []
    while True:  # one round per newly known trial, like the driver
        configs = sample_configs(space, 8, "tpe", seed=7, startup=3, first={"x": 0.0, "k": 2}, value_of=value_of)
        rounds.append(len(configs))
        for i, params in enumerate(configs):
            values.setdefault(i, objective(params))
        if len(configs) == 8:
            break
    assert rounds[0] == 3 and rounds[-1] == 8  # the random start is known at once, then one trial at a time
    replay = sample_configs(space, 8, "tpe", seed=7, startup=3, first={"x": 0.0, "k": 2}, value_of=value_of)
    assert replay == configs and configs[0] == {"x": 0.0, "k": 2}
    values[5] = None  # a failed trial is replayed as failed; earlier trials keep their configurations
    assert sample_configs(space, 8, "tpe", seed=7, startup=3, first={"x": 0.0, "k": 2}, value_of=value_of)[:6] == configs[:6]
    random = sample_configs(space, 8, "random", seed=7)
    assert len(random) == 8 and random == sample_configs(space, 8, "random", seed=7) != sample_configs(space, 8, "random", seed=8)


def test_cli_rejects_a_bad_search_before_training(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('backbone = ["smallcnn"]\nsource = ["toy:a"]\ntarget = ["toy:b"]\nstrategy = ["finetune"]\n'
                    'loss = ["dann"]\nshots = [0]\nseeds = [0]\n[search]\ntrials = 2\n[search.space.dann]\n'
                    'weight = {low = 1.0, high = 0.1}\n')
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--grid", grid, "--results-dir", tmp_path / "r")
    assert proc.returncode == 2 and "loss 'dann' search space `weight`: low 1.0 must be below high 0.1" in proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("result.json"))
    proc = run_cli("run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b", "--search", "0")
    assert proc.returncode == 2 and "--search 0 must be at least 1" in proc.stderr
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                   "--select", "im",
                   "--results-dir", tmp_path / "r2")
    assert proc.returncode == 2 and "--select im picks among search trials" in proc.stderr


def test_cells_outside_a_search_keep_their_run_ids_and_any_validator_can_pick_checkpoints(registry):
    import json
    from pathlib import Path

    from tlbench.grid.spec import RunSpec

    # DANN cells committed before searches existed: the ids that release wrote, not recomputed here
    committed = sorted((Path(__file__).resolve().parents[2] / "results/adaptation/runs").glob("*__dann__*/result.json"))
    assert committed
    for path in committed:
        record = json.loads(path.read_text())
        spec = RunSpec.from_record(record)
        assert not spec.trial and record["run_id"] in spec.accepted_ids and "trial" not in spec.dirname
    for name in ("entropy", "im", "snd", "dev", "source-val", "target-oracle"):
        assert expand({**BASE, "train": {"model_selection": name}}, registry)[0].train.model_selection == name
    with pytest.raises(UserError, match="`model_selection` = 'entropyy' is not `last` or a validator; use one of last, entropy"):
        expand({**BASE, "train": {"model_selection": "entropyy"}}, registry)
