"""The named benchmarks read small fake trees in their real layouts (written here): the right
domains, class order and split sizes; a wrong or partial tree is refused in one line before any
training; a short domain is a one-line warning; `tlbench plugins NAME` says where to get it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import read_results, run_cli
from tlbench.plugin.errors import UserError
from tlbench_plugins.datasets.benchmarks.catalogue import BENCHMARKS
from tlbench_plugins.datasets.benchmarks.plugin import PLUGINS

# the published label order, written out here from the reference loaders (not read from the code)
FIRST_LAST = {
    "office31": ("back_pack", "trash_can", 31),
    "officehome": ("Drill", "Marker", 65),
    "pacs": ("dog", "person", 7),
    "vlcs": ("bird", "person", 5),
    "domainnet": ("aircraft_carrier", "zigzag", 345),
    "visda2017": ("aeroplane", "truck", 12),
}
DOMAINS = {
    "office31": ("amazon", "dslr", "webcam"),
    "officehome": ("Art", "Clipart", "Product", "Real_World"),
    "pacs": ("art_painting", "cartoon", "photo", "sketch"),
    "vlcs": ("Caltech101", "LabelMe", "SUN09", "VOC2007"),
    "domainnet": ("clipart", "infograph", "painting", "quickdraw", "real", "sketch"),
    "visda2017": ("train", "validation"),
}


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((12, 12, 3), value % 256, dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(pixels).save(path)


def write_tree(name: str, root: Path, per_class: int = 5, domains=None, list_classes: int = 3) -> Path:
    """A fake copy of benchmark ``name`` in its real layout: every class folder for folder layouts,
    list files naming ``list_classes`` classes for list layouts (DomainNet, VisDA-2017)."""
    b = BENCHMARKS[name]
    for d, domain in enumerate(domains or b.domains):
        if name == "domainnet":
            lines = {"train": [], "test": []}
            for label, cls in enumerate(b.classes[:list_classes]):
                for i in range(per_class):
                    rel = f"{domain}/{cls}/{domain}_{label:03d}_{i:06d}.jpg"
                    _image(root / rel, 10 * label + i + d)
                    lines["test" if i % 4 == 0 else "train"].append(f"{rel} {label}")
            for split, items in lines.items():
                (root / f"{domain}_{split}.txt").write_text("\n".join(items) + "\n")
        elif name == "visda2017":
            lines = []
            suffix = ".png" if domain == "train" else ".jpg"
            for label, cls in enumerate(b.classes[:list_classes]):
                for i in range(per_class):
                    rel = f"{cls}/{cls}_{i:05d}{suffix}"
                    _image(root / domain / rel, 10 * label + i + d)
                    lines.append(f"{rel} {label}")
            (root / domain / "image_list.txt").write_text("\n".join(lines) + "\n")
        else:
            base = root / domain / ("images" if name == "office31" else "")
            for label, cls in enumerate(b.classes):
                for i in range(per_class):
                    _image(base / cls / f"{i:04d}.jpg", 7 * label + i + d)
    return root


def test_the_catalogue_holds_the_published_domains_classes_and_counts():
    assert set(BENCHMARKS) == set(FIRST_LAST)
    for name, (first, last, count) in FIRST_LAST.items():
        b = BENCHMARKS[name]
        assert b.domains == DOMAINS[name] and len(b.classes) == len(set(b.classes)) == count
        assert (b.classes[0], b.classes[-1]) == (first, last)
    assert BENCHMARKS["officehome"].classes[:3] == ("Drill", "Exit_Sign", "Bottle")  # TLlib's order, not sorted
    # the official lists number DomainNet's classes in case-insensitive order, '_' and '-' ignored
    dn = BENCHMARKS["domainnet"].classes
    assert list(dn) == sorted(dn, key=lambda c: c.lower().replace("_", "").replace("-", ""))
    assert BENCHMARKS["office31"].expected == {"amazon": 2817, "dslr": 498, "webcam": 795}
    assert sum(sum(v.values()) for v in BENCHMARKS["domainnet"].expected.values()) == 586_575


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_each_benchmark_reads_its_real_layout_with_the_right_labels_and_splits(name, tmp_path, capsys):
    root = write_tree(name, tmp_path / name, per_class=5)
    dataset = PLUGINS[name](data_root=str(root), size=16)
    domain = DOMAINS[name][0]
    dataset.check_domain(domain)
    data = dataset.load(domain)
    b = BENCHMARKS[name]
    listed = name in ("domainnet", "visda2017")
    classes = 3 if listed else len(b.classes)
    train_paths, test_paths = data.train.x.paths, data.test.x.paths
    assert not set(train_paths) & set(test_paths)
    if name == "domainnet":  # the official lists: i % 4 == 0 went to the test list above
        assert (len(train_paths), len(test_paths)) == (3 * 3, 3 * 2)
    else:  # holdout: round(5 * 0.2) = 1 test image per class
        assert (len(train_paths), len(test_paths)) == (classes * 4, classes * 1)
    for paths, labels in ((train_paths, data.train.y), (test_paths, data.test.y)):
        for path, label in zip(paths, labels.tolist()):
            assert Path(path).parent.name == b.classes[label]  # the label is the class folder's published index
    assert f"warning: {name} domain {domain!r} has" in capsys.readouterr().err  # a fake tree is a partial one


def test_holdout_is_seeded_and_full_uses_every_image_for_both(tmp_path):
    root = write_tree("pacs", tmp_path / "pacs", per_class=10, domains=("photo",))
    first = PLUGINS["pacs"](data_root=str(root), size=16).load("photo")
    again = PLUGINS["pacs"](data_root=str(root), size=16).load("photo")
    assert first.test.x.paths == again.test.x.paths and len(first.test.x.paths) == 7 * 2
    full = PLUGINS["pacs"](data_root=str(root), size=16, split="full").load("photo")
    assert sorted(full.train.x.paths) == sorted(full.test.x.paths) and len(full.test.x.paths) == 70


def test_office_home_accepts_the_original_real_world_folder_name(tmp_path):
    root = write_tree("officehome", tmp_path / "oh", per_class=2, domains=("Real_World",))
    (root / "Real_World").rename(root / "Real World")
    data = PLUGINS["officehome"](data_root=str(root), size=16).load("Real_World")
    assert len(data.train.x.paths) + len(data.test.x.paths) == 65 * 2


BROKEN = [
    ("office31", lambda r: shutil.rmtree(r / "webcam"), "domain folder 'webcam' is missing"),
    ("office31", lambda r: (r / "amazon" / "images" / "bike").rename(r / "amazon" / "images" / "Bike"),
     "class folder 'Bike' in"),
    ("officehome", lambda r: shutil.rmtree(r / "Clipart" / "Marker"), "Clipart lacks class folder(s) 'Marker'"),
    ("domainnet", lambda r: (r / "infograph_test.txt").unlink(), "list file"),
    ("visda2017", lambda r: (r / "validation" / "image_list.txt").unlink(), "image_list.txt' is missing"),
]


@pytest.mark.parametrize("name, damage, fragment", BROKEN, ids=[f"{b[0]}-{b[2][:20]}" for b in BROKEN])
def test_a_wrong_or_partial_tree_is_one_line_before_training(name, damage, fragment, tmp_path):
    root = write_tree(name, tmp_path / name, per_class=2, domains=DOMAINS[name][:3])
    damage(root)
    source, target = DOMAINS[name][0], DOMAINS[name][1] if name != "office31" else "webcam"
    done = run_cli("run", "--backbone", "smallcnn", "--source", f"{name}:{source}", "--target", f"{name}:{target}",
                   "--data-root", root, "--results-dir", tmp_path / "runs")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and fragment in lines[-1] and "expected" in lines[-1], done.stderr
    assert lines[-1].startswith("error: ") and "Traceback" not in done.stderr + done.stdout
    assert not list((tmp_path / "runs").glob("*/result.json"))


def test_plugins_name_says_domains_classes_split_counts_licence_and_where_to_get_it():
    done = run_cli("plugins", "officehome", "--json")
    info = json.loads(done.stdout)
    meta = info["meta"]
    assert meta["domains"] == list(DOMAINS["officehome"]) and meta["num_classes"] == 65
    assert meta["expected_images"] == {"Art": 2427, "Clipart": 4365, "Product": 4439, "Real_World": 4357}
    assert "holdout" in meta["split_rule"] and "hemanthdv.org" in meta["get_it"] and meta["licence"]
    assert info["options"]["split"]["choices"] == ["holdout", "full"]
    text = run_cli("plugins", "domainnet").stdout
    assert "official" in text and "ai.bu.edu/M3SDA" in text


def test_a_grid_runs_on_a_fake_office31_tree(tmp_path):
    root = write_tree("office31", tmp_path / "office31", per_class=3, domains=("amazon", "webcam"))
    done = run_cli("run", "--backbone", "smallcnn", "--source", "office31:amazon", "--target", "office31:webcam",
                   "--data-root", root, "--set", "office31.size=16", "--set", "smallcnn.width=4", "--shots", "0",
                   "--set", "train.steps=2", "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2",
                   "--set", "train.export_dynamo=false", "--set", "train.int8=false", "--set", "train.augment=tllib",
                   "--results-dir", tmp_path / "runs", "--threads", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = read_results(tmp_path / "runs")
    assert result["status"] == "ok" and result["target_classes"][0] == "back_pack" and len(result["target_classes"]) == 31


def test_no_data_root_says_where_to_get_it():
    with pytest.raises(UserError, match="office31 needs --data-root DIR laid out as DATA_ROOT/<amazon"):
        PLUGINS["office31"]()


PROTOCOLS = Path(__file__).resolve().parents[2] / "examples" / "protocols"


@pytest.mark.parametrize("grid, name, cells", [("office31_tllib.toml", "office31", 6 * 3 * 3),
                                                ("officehome_tllib.toml", "officehome", 12 * 3 * 1)])
def test_each_protocol_grid_validates_against_a_fake_tree(grid, name, cells, tmp_path):
    text = (PROTOCOLS / grid).read_text()
    for published in ("79.5", "86.1", "87.7") if name == "office31" else ("58.4", "65.2", "68.8"):
        assert published in text  # the numbers it should reproduce are named in the file
    root = write_tree(name, tmp_path / name, per_class=2)
    # ImageNet weights cannot be fetched here: the dry run checks everything else with random ones
    done = run_cli("run", "--grid", PROTOCOLS / grid, "--data-root", root, "--results-dir", tmp_path / "runs",
                   "--set", "resnet50.weights=", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dry run: {cells} runs in grid, 0 already finished, {cells} to run" in " ".join(done.stdout.split())
    assert not list((tmp_path / "runs").glob("*/result.json"))
    broken = run_cli("run", "--grid", PROTOCOLS / grid, "--data-root", tmp_path / "nowhere", "--dry-run")
    assert broken.returncode == 2 and f"{name} data_root" in broken.stderr and "is not a folder" in broken.stderr


@pytest.mark.parametrize("name, published, held_out", [("pacs", "85.5", 4), ("vlcs", "77.5", 4),
                                                       ("officehome", "66.5", 4), ("domainnet", "40.9", 6)])
def test_each_domainbed_protocol_validates_as_a_leave_one_out_search(name, published, held_out, tmp_path):
    grid = PROTOCOLS / f"{name}_domainbed.toml"
    assert f"ERM {published}" in grid.read_text()  # the number it should reproduce is named in the file
    root = write_tree(name, tmp_path / name, per_class=2)
    done = run_cli("run", "--grid", grid, "--data-root", root, "--results-dir", tmp_path / "runs",
                   "--set", "resnet50.weights=", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    cells = held_out * 5 * 3  # held-out domains x algorithms x seeds
    assert f"dry run: {cells} runs in grid" in text and f"{cells * 20} trial cells when it runs" in text
    assert f"->{name}:" in text and not list((tmp_path / "runs").glob("*/result.json"))
