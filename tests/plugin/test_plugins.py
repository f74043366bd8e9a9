import json
import os

import pytest

from tlbench.plugin.errors import PluginError
from tlbench.plugin.discovery import load_plugins
from tlbench.plugin.registry import KINDS, Provenance, Registry

from conftest import run_cli


def test_first_party_plugins_come_through_entry_points(registry):
    backbones = registry.entries["backbones"]
    assert {"smallcnn", "resnet18"} <= set(backbones)
    assert backbones["smallcnn"].provenance.distribution == "tlbench"
    assert {"scratch", "linear-probe", "finetune"} <= set(registry.entries["strategies"])
    assert {"none", "dann"} <= set(registry.entries["adaptation_losses"])
    assert registry.entries["datasets"]["digits"].meta["domains"] == ("mnist", "uci")


def test_broken_and_duplicate_plugins_are_reported_and_the_rest_load(tmp_path):
    (tmp_path / "broken_one.py").write_text("raise ImportError('no such thing')\n")
    (tmp_path / "dupe.py").write_text(
        "from tlbench import hookimpl\n"
        "@hookimpl\n"
        "def register_backbones(register):\n"
        "    register('smallcnn', lambda shape: None)\n"
    )
    _, registry = load_plugins([tmp_path])
    errors = {b["plugin"]: b["error"] for b in registry.broken}
    assert "no such thing" in errors["broken_one"]
    assert "duplicate backbone 'smallcnn'" in errors["dupe"]
    assert "smallcnn" in errors["dupe"] and "tlbench" in errors["dupe"] and "dupe" in errors["dupe"]
    # the first registration wins and everything else still works
    assert registry.entries["backbones"]["smallcnn"].provenance.plugin == "smallcnn"
    assert "digits" in registry.entries["datasets"]


def test_registry_rejects_duplicates_naming_both_sides():
    reg = Registry()
    reg.add("strategies", "x", type("A", (), {}), {}, Provenance("first", "dist-a", "1.0"))
    with pytest.raises(PluginError, match=r"first \(dist-a 1.0\).*second"):
        reg.add("strategies", "x", type("B", (), {}), {}, Provenance("second"))


def test_registry_rejects_instances_for_class_kinds():
    with pytest.raises(PluginError, match="must be a class"):
        Registry().add("adaptation_losses", "x", object(), {}, Provenance("p"))


def test_allowlist_env_restricts_loading(monkeypatch):
    monkeypatch.setenv("TLBENCH_LOAD_PLUGINS", "smallcnn,digits")
    _, registry = load_plugins()
    assert registry.names("backbones") == ["smallcnn"]
    assert registry.names("datasets") == ["digits"]
    assert registry.names("strategies") == []


def test_plugins_json_shape(tmp_path):
    (tmp_path / "bad.py").write_text("1/0\n")
    proc = run_cli("--plugins-dir", tmp_path, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == set(KINDS) | {"broken"}
    smallcnn = next(e for e in data["backbones"] if e["name"] == "smallcnn")
    assert {"name", "plugin", "distribution", "version"} <= set(smallcnn)
    digits = next(e for e in data["datasets"] if e["name"] == "digits")
    assert digits["domains"] == ["mnist", "uci"]
    assert any(b["plugin"] == "bad" and "ZeroDivisionError" in b["error"] for b in data["broken"])


def test_plugins_table_lists_provenance():
    proc = run_cli("plugins")
    assert proc.returncode == 0
    assert "smallcnn" in proc.stdout and "tlbench" in proc.stdout


def test_every_hookspec_is_documented_and_implemented(registry):
    from tlbench.plugin import hookspecs

    for kind in KINDS:
        spec = getattr(hookspecs, f"register_{kind}")
        assert spec.__doc__ and len(spec.__doc__.strip()) > 20
        assert registry.entries[kind], f"no first-party plugin implements register_{kind}"
