"""``--download`` for the named benchmarks with a public host (DomainNet, VisDA-2017): a domain's
archives and list files fetched into DATA_ROOT, checksummed and unpacked atomically
(tlbench.utils.download). The others say in one line where to get them and how to lay them out."""

from __future__ import annotations

import os
from pathlib import Path

from tlbench.plugin.errors import UserError
from tlbench.utils.download import extract, fetch, remember, verify

from tlbench_plugins.datasets.benchmarks import layout
from tlbench_plugins.datasets.benchmarks.catalogue import Benchmark

STAGING = ".downloads"  # under DATA_ROOT: archives while they download (resumed from here)


def download_domain(benchmark: Benchmark, root: Path, domain: str, base_url: str = "", log=print) -> None:
    """Fetch ``domain`` into ``root`` unless its layout already checks; then check it."""
    try:
        layout.check(benchmark, root, domain)
        return
    except UserError:
        pass
    if not benchmark.downloads:
        raise UserError(f"{benchmark.name} has no public download URL; get it from {benchmark.source} and lay it out "
                        f"as {benchmark.layout_text}")
    base = (base_url or benchmark.base_url).rstrip("/") + "/"
    staging = root / STAGING
    for item in benchmark.downloads[domain]:
        url = base + item.path
        saved = staging / Path(item.path).name
        fetch(url, saved, log)
        digest = verify(saved, item.sha256, root, item.path)
        if item.unpack:
            extract(saved, root)
            saved.unlink()
        else:
            os.replace(saved, root / item.saved)
        remember(root, item.path, digest)
    log(f"{benchmark.name}: {domain} downloaded into {root}")
    layout.check(benchmark, root, domain)
