"""`tlbench rank`: candidates, source models trained once and cached, scores ranked, errors in one line."""

import json

import pytest

from conftest import TOY_PLUGINS, run_cli
from tlbench.cli.main import main
from tlbench.plugin.errors import UserError
from tlbench.transferability.rank import Candidate, parse_candidates

FAST = ["--set", "train.source_epochs=1", "--set", "train.bn_recalibration_batches=2"]


def test_candidates_pair_plain_names_with_every_source_and_keep_their_own():
    got = parse_candidates(["smallcnn", "efficientnet_lite0@pretrained", "resnet18@digits:mnist[0-4]"], ["d:a", "d:b"])
    assert got == [Candidate("smallcnn", "d:a"), Candidate("smallcnn", "d:b"), Candidate("efficientnet_lite0", "pretrained"),
                   Candidate("resnet18", "digits:mnist[0-4]")]
    assert got[2].label == "efficientnet_lite0@pretrained"
    with pytest.raises(UserError, match="has no source"):
        parse_candidates(["smallcnn"], [])
    with pytest.raises(UserError, match="NAME or NAME@SOURCE"):
        parse_candidates(["smallcnn@"], ["d:a"])


def test_rank_trains_source_models_once_and_ranks_by_the_chosen_estimator(tmp_path):
    args = ["--plugins-dir", TOY_PLUGINS, "rank", "--backbone", "smallcnn,resnet18", "--source", "toy:a", "--target", "toy:b",
            "--shots", "5", "--results-dir", tmp_path, *FAST]
    proc = run_cli(*args, "--json", "--by", "knn")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["by"] == "knn" and out["shots"] == 5 and "5 labeled target examples per class" in out["labels_from"]
    rows = out["candidates"]
    assert {r["candidate"] for r in rows} == {"smallcnn@toy:a", "resnet18@toy:a"}
    assert all(r["source_model"] == "trained" and r["examples"] == 15 for r in rows)  # 5 shots x 3 classes
    knn = [r["scores"]["knn"] for r in rows]
    assert knn == sorted(knn, reverse=True) and [r["rank"] for r in rows] == [1, 2]
    for row in rows:
        assert set(row["scores"]) >= {"logme", "leep", "nce", "hscore", "knn"}
        assert all(row["scores"][name] is not None for name in ("logme", "leep", "nce", "hscore-lw", "knn"))
        # 15 examples, more feature dimensions: plain H-score would be classes - 1 for any model, so it says why not
        assert row["scores"]["hscore"] is None and "hscore-lw" in row["errors"]["hscore"]
        assert set(row["seconds"]) == set(row["scores"]) and row["feature_seconds"] >= 0
    # the same source models again: found in the cache, and the same scores
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "ranked by logme" in again.stdout and again.stdout.count("cached") >= 2
    assert "trained source model" not in again.stderr


@pytest.mark.parametrize("extra, message", [
    (["--by", "nope"], "--by 'nope' is not among the estimators"),
    (["--shots", "0"], "--shots 0 gives the estimators no labeled target examples"),
    (["--target", "toy:a,toy:b"], "rank scores candidates for one target"),
    (["--backbone", "smallcnn@pretrained"], "source `pretrained` needs pretrained weights"),
    (["--backbone", "smalcnn"], "unknown backbone 'smalcnn'"),
    (["--estimators", "logme,leap"], "unknown estimator 'leap'"),
    (["--set", "knn.k=0"], "option `k` = 0 is out of range; use 1..10000"),
    (["--set", "knn.kk=1"], "estimator 'knn' has no option 'kk'"),
    (["--set", "resnet18.pretrained=true"], "no candidate uses"),
    (["--estimators", "logme", "--set", "knn.k=3"], "--estimators leaves out"),
    (["--set", "train.steps=-1"], "train option `steps`"),
])
def test_bad_input_is_one_line_before_any_training(tmp_path, capsys, extra, message):
    base = {"--backbone": "smallcnn", "--source": "toy:a", "--target": "toy:b", "--results-dir": str(tmp_path / "runs")}
    for flag in extra[::2]:
        base.pop(flag, None)
    argv = ["--plugins-dir", str(TOY_PLUGINS), "rank", *[x for kv in base.items() for x in kv], *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing cached


def test_estimator_options_in_a_grid_say_where_they_belong(tmp_path, capsys):
    argv = ["--plugins-dir", str(TOY_PLUGINS), "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
            "--set", "knn.k=3", "--results-dir", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "estimator 'knn'" in err and "tlbench rank --set knn.OPTION=VALUE" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
