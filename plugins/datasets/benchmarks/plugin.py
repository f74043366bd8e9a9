"""One dataset plugin per named benchmark (``office31``, ``officehome``, ``pacs``, ``vlcs``,
``domainnet``, ``visda2017``): canonical domains and class order, the published layout read from
``--data-root``, lazy splits through the decode cache, ImageNet normalisation at ``size``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing
from tlbench.plugin.errors import UserError
from tlbench.plugin.sources import image_files_split

from tlbench_plugins.datasets.benchmarks import layout
from tlbench_plugins.datasets.benchmarks.fetching import download_domain
from tlbench_plugins.datasets.benchmarks.catalogue import BENCHMARKS, FULL, HOLDOUT, OFFICIAL, Benchmark, expected_count

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SPLIT_SEED = 20261207
SPLIT_RULES = {
    HOLDOUT: "a seeded test_fraction of every class is the test split (never trained on, not even unlabeled)",
    FULL: "every image is a training image (unlabeled for a target) and a test image: TLlib's transductive UDA "
          "protocol; use with --shots 0 only",
    OFFICIAL: "the dataset's own <domain>_train.txt / <domain>_test.txt lists",
}


def holdout(items: list[tuple[Path, int]], fraction: float, seed: list[int]) -> tuple[list, list]:
    """(train, test): a seeded ``fraction`` of every class held out, at least one image per class
    kept for training; the same files and seed give the same split on every machine."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    train, test = [], []
    for label in sorted(by_class):
        members = by_class[label]
        order = rng.permutation(len(members))
        n_test = min(int(round(len(members) * fraction)), len(members) - 1)
        test += [members[i] for i in order[:n_test]]
        train += [members[i] for i in order[n_test:]]
    return train, test


class NamedBenchmark(Dataset):
    """Base of the named benchmarks; each subclass sets ``BENCHMARK``."""

    BENCHMARK: Benchmark

    def __init__(self, data_root: str = "", size: int = 224, split: str = "", test_fraction: float = 0.2,
                 lazy: bool = True, download: bool = False, download_url: str = ""):
        b = self.BENCHMARK
        if not data_root:
            raise UserError(f"{b.name} needs --data-root DIR laid out as {b.layout_text}; get it from {b.source}")
        root = Path(data_root).expanduser()
        if download and b.downloads:
            root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise UserError(f"{b.name} data_root {str(root)!r} is not a folder; expected {b.layout_text} "
                            f"(get it from {b.source})")
        if download_url and not download_url.startswith(("http://", "https://")):
            raise UserError(f"{b.name} option `download_url` = {download_url!r} must be an http:// or https:// address "
                            f"(it replaces {b.base_url or 'the download host'})")
        split = split or b.splits[0]
        if split not in b.splits:
            raise UserError(f"{b.name} option `split` = {split!r} is not one of {', '.join(b.splits)}")
        self.root, self.size, self.split, self.test_fraction, self.lazy = root, size, split, test_fraction, lazy
        self.download, self.download_url = download, download_url
        self.domains, self.classes = b.domains, b.classes
        self.preprocessing = Preprocessing(IMAGE, (3, size, size), IMAGENET_MEAN, IMAGENET_STD)

    def check_domain(self, domain: str) -> None:
        """The domain's folders and list files are where the published layout puts them; with
        ``download`` (``--download``) a missing domain is fetched first."""
        if self.download:
            download_domain(self.BENCHMARK, self.root, domain, self.download_url)  # checks the layout it leaves
        else:
            layout.check(self.BENCHMARK, self.root, domain)

    def split_items(self, domain: str) -> tuple[list, list]:
        """(train, test) ``(path, label)`` items of ``domain`` under the chosen split rule."""
        found = layout.read(self.BENCHMARK, self.root, domain)
        if self.split == OFFICIAL:
            return found["train"], found["test"]
        items = [item for split_items in found.values() for item in split_items]
        if self.split == FULL:
            return items, items
        return holdout(items, self.test_fraction, [SPLIT_SEED, self.domains.index(domain)])

    def load(self, domain: str) -> DomainData:
        if domain not in self.domains:
            raise UserError(f"{self.BENCHMARK.name} has no domain {domain!r}; use one of {', '.join(self.domains)}")
        train, test = self.split_items(domain)

        return DomainData(image_files_split(train, self.preprocessing, self.lazy),
                          image_files_split(test, self.preprocessing, self.lazy))


def _doc(b: Benchmark) -> str:
    counts = ", ".join(f"{d} {expected_count(b, d):,}" for d in b.domains)
    rules = "; ".join(f"{name}: {SPLIT_RULES[name]}" for name in b.splits)
    fetchable = (f"--download fetches a missing domain from {b.base_url} (option `download_url` replaces that host)"
                 if b.downloads else "no public download URL: fetch it yourself")
    return (f"{b.title}: {len(b.domains)} domains, {len(b.classes)} classes in the published label order.\n\n"
            f"Layout: {b.layout_text}.\nImages per domain (published release): {counts}.\n"
            f"Split rules (option `split`, default {b.splits[0]}): {rules}.\nGet it: {b.source} ({fetchable}).\n"
            f"Licence: {b.licence}.")


PLUGINS = {name: type(f"Benchmark_{name}", (NamedBenchmark,), {"BENCHMARK": b, "__doc__": _doc(b)})
           for name, b in BENCHMARKS.items()}


@hookimpl
def register_datasets(register):
    for name, cls in PLUGINS.items():
        b = cls.BENCHMARK
        register(
            name,
            cls,
            domains=b.domains,
            modality=IMAGE,
            num_classes=len(b.classes),
            classes=b.classes,
            label_space=name,
            defaults={"data_root": "", "size": 224, "split": b.splits[0], "test_fraction": 0.2, "lazy": True,
                      "download": False, "download_url": ""},
            option_ranges={"size": (8, 512), "test_fraction": (0.01, 0.9)},
            option_choices={"split": b.splits},
            split_rule=f"{b.splits[0]} (default): {SPLIT_RULES[b.splits[0]]}",
            expected_images={d: b.expected[d] for d in b.domains},
            layout=b.layout_text,
            get_it=b.source,
            licence=b.licence,
            description=f"{b.title} from DATA_ROOT ({b.layout_text})",
        )
