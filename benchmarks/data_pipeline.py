"""Streaming image data at 224 px: decoders, the decode cache, throughput against a plain
torchvision loader, and peak memory as a domain grows.

    python benchmarks/data_pipeline.py [--root DIR] [--sizes 1000,4000,15000] [--workers 2] [--grid]

Writes a synthetic Office-Home-like folder under ``--root`` (300x300 JPEGs at quality 90, 65
classes, 4 domains per size; 2,000 distinct images hard-linked to reach each size, so the files
on disk are real JPEGs while writing stays quick), then measures:

1. decoders, one process, one image at a time to 224x224: Pillow (convert + bilinear resize),
   Pillow with JPEG DCT scaling (``Image.draft``), tlbench's ``decode_image``
   (``torchvision.io.decode_jpeg`` + antialiased uint8 ``resize``); simplejpeg when installed;
2. the machine's decode limit: one process per core decoding and resizing the same files;
3. one epoch of a source domain (train split, batch 64) through a plain
   ``torchvision.datasets.ImageFolder`` + ``DataLoader`` (TLlib's training transform:
   RandomResizedCrop 224 + flip on the full image, ToTensor, Normalize; same workers), through
   tlbench's first pass (decode cache built, then the epoch read with the ``tllib`` preset) and
   through tlbench from the cache (a second cell);
4. peak RSS of one cell's data path (decode cache built, an epoch of source batches with the
   ``tllib`` preset, one evaluation pass over the target test split), in a fresh process per size;
5. with ``--grid``: a real grid per size (resnet18, random init, 224 px, finetune with none and
   dann, ``train.augment=tllib``, 3 steps) under ``/usr/bin/time``: peak RSS and wall time.

Results go to results/benchmarks/data_pipeline.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, machine  # noqa: E402

CLASSES, DOMAINS, DISTINCT, SIDE, SIZE = 65, ("Art", "Clipart", "Product", "Real_World"), 2000, 300, 224
BATCH = 64


# -- the synthetic folder ----------------------------------------------------------------------
def distinct_images(folder: Path) -> list[Path]:
    """DISTINCT 300x300 JPEGs (smooth colour fields with texture, so they compress like photos)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(DISTINCT)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    for i, path in enumerate(paths):
        a, b, c = rng.uniform(0, 6, 3)
        base = np.stack([np.sin(a * xx + b * yy + k) for k in (0.0, 2.0, 4.0)], axis=-1)
        noise = rng.normal(0, 0.15, (SIDE // 4, SIDE // 4, 3)).repeat(4, 0).repeat(4, 1)
        pixels = np.clip((base * 0.4 + 0.5 + noise) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
    return paths


def make_folder(root: Path, per_domain: int, sources: list[Path]) -> Path:
    """ROOT/<per_domain>/<domain>/<class>/<i>.jpg hard links to the distinct images."""
    top = root / str(per_domain)
    done = top / ".complete"
    if done.exists():
        return top
    shutil.rmtree(top, ignore_errors=True)
    for d, domain in enumerate(DOMAINS):
        for i in range(per_domain):
            label = i % CLASSES
            folder = top / domain / f"class_{label:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            os.link(sources[(i * 7 + d * 13) % len(sources)], folder / f"{i:05d}.jpg")
    done.write_text("ok")
    return top


# -- 1 and 2: decoders --------------------------------------------------------------------------
def _pillow(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))


def _pillow_draft(path):
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (SIZE, SIZE))
        return np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))


def _tlbench(path):
    from tlbench.plugin.sources import decode_image

    return decode_image(str(path), SIZE, SIZE)


def decoders(paths) -> dict:
    import torch

    threads = torch.get_num_threads()  # restored below: the throughput runs use every thread
    torch.set_num_threads(1)
    found = {"pillow": _pillow, "pillow + draft": _pillow_draft, "torchvision.io.decode_jpeg (tlbench's decode_image)": _tlbench}
    try:
        import simplejpeg

        def _simplejpeg(path):
            from PIL import Image

            data = Path(path).read_bytes()
            pixels = simplejpeg.decode_jpeg(data, min_height=SIZE, min_width=SIZE)
            return np.asarray(Image.fromarray(pixels).resize((SIZE, SIZE), Image.BILINEAR))

        found["simplejpeg"] = _simplejpeg
    except ImportError:
        pass
    out = {}
    for name, fn in found.items():
        fn(paths[0])
        start = time.perf_counter()
        for path in paths:
            fn(path)
        out[name] = round(len(paths) / (time.perf_counter() - start), 1)
    torch.set_num_threads(threads)
    return out


def decode_limit(paths, processes: int) -> float:
    """Images/s of one process per core decoding (tlbench's decoder) the same files."""
    with Pool(processes) as pool:
        pool.map(_tlbench, paths[:processes * 4])
        start = time.perf_counter()
        pool.map(_tlbench, paths, chunksize=16)
        return round(len(paths) / (time.perf_counter() - start), 1)


# -- 3: throughput ------------------------------------------------------------------------------
def source_split(folder: Path):
    """The lazy train split of domain 0 exactly as a grid loads it (imagefolder's seeded split)."""
    from tlbench_plugins.datasets.imagefolder import ImageFolderDomains

    dataset = ImageFolderDomains(data_root=str(folder), size=SIZE)
    data = dataset.load(DOMAINS[0])
    return dataset, data


def plain_epoch(folder: Path, workers: int, files: list[str]) -> dict:
    """One epoch of the same files through torchvision's ImageFolder + DataLoader."""
    import torch
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomResizedCrop(SIZE, antialias=True), v2.RandomHorizontalFlip(), v2.ToImage(),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    wanted = set(files)
    dataset = datasets.ImageFolder(str(folder / DOMAINS[0]), transform=transform,
                                   is_valid_file=lambda p: str(Path(p)) in wanted)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    seconds = time.perf_counter() - start
    return {"images": seen, "seconds": round(seconds, 2), "img_per_s": round(seen / seconds, 1)}


def tlbench_epoch(split, preprocessing, cache_dir: Path, workers: int) -> dict:
    """Cache lookup (or build) + one epoch of seeded batches with the tllib view, as a cell reads."""
    import torch

    from tlbench.training.data import Sampler
    from tlbench.training.decode_cache import DecodeCache
    from tlbench.training.loop import draw
    from tlbench.training.presets import training_view
    from tlbench.training.streaming import LazyRows, stream

    start = time.perf_counter()
    cache = DecodeCache(cache_dir, workers=workers, log=lambda m: None)
    x = stream(LazyRows(split.x), preprocessing, preprocessing.input_shape, "cpu", cache, "bench")
    ready = time.perf_counter() - start
    view = training_view("tllib", preprocessing, torch.Generator().manual_seed(0))
    sampler = Sampler(len(x), BATCH, torch.Generator().manual_seed(0))
    seen = 0
    for _ in range(-(-len(x) // BATCH)):
        batch = draw(x, sampler.next_index(), view)  # what training reads: uint8 view, then normalised
        seen += len(batch)
    seconds = time.perf_counter() - start
    return {"images": seen, "seconds": round(seconds, 2), "cache_seconds": round(ready, 2),
            "img_per_s": round(seen / seconds, 1)}


# -- 4: memory ----------------------------------------------------------------------------------
def child_data_path(folder: Path, cache_dir: Path, workers: int) -> None:
    """In a fresh process: one cell's data path; prints JSON with this process's peak RSS."""
    import torch

    from tlbench.training.inference import map_batches

    torch.set_num_threads(2)
    dataset, source = source_split(folder)
    target = dataset.load(DOMAINS[1])
    first = tlbench_epoch(source.train, dataset.preprocessing, cache_dir, workers)
    from tlbench.training.decode_cache import DecodeCache
    from tlbench.training.streaming import LazyRows, stream

    test = stream(LazyRows(target.test.x), dataset.preprocessing, dataset.preprocessing.input_shape, "cpu",
                  DecodeCache(cache_dir, workers=workers, log=lambda m: None), "bench-test")
    means = map_batches(lambda b: b.mean(), test, 256)
    print(json.dumps({"train_images": len(source.train), "test_images": len(test), "epoch": first, "eval_batches": len(means),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "peak_child_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}))


def grid_run(folder: Path, cache_dir: Path, results: Path) -> dict:
    """A real grid on ``folder`` under /usr/bin/time: peak RSS (MiB) and wall seconds."""
    cmd = ["/usr/bin/time", "-f", "%M %e", sys.executable, "-m", "tlbench.cli.main", "run", "--backbone", "resnet18",
           "--source", f"imagefolder:{DOMAINS[0]}", "--target", f"imagefolder:{DOMAINS[1]}", "--data-root", str(folder),
           "--strategy", "finetune", "--loss", "none,dann", "--shots", "0", "--seeds", "0",
           "--set", f"imagefolder.size={SIZE}", "--set", "train.augment=tllib", "--set", "train.steps=3",
           "--set", "train.batch_size=16", "--set", "train.source_epochs=0.01", "--set", "train.int8=false",
           "--set", "train.latency_repeats=2", "--set", "train.export_dynamo=false", "--set", "train.bn_recalibration_batches=2",
           "--set", f"train.decode_cache_dir={cache_dir}", "--threads", "2", "--results-dir", str(results)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rss_kb, wall = proc.stderr.strip().splitlines()[-1].split()
    ok = proc.returncode == 0
    return {"ok": ok, "peak_rss_mb": round(int(rss_kb) / 1024, 1), "wall_s": float(wall),
            "tail": "" if ok else proc.stdout[-2000:] + proc.stderr[-2000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "tlbench-data-pipeline")
    parser.add_argument("--sizes", default="1000,4000,15000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grid", action="store_true", help="also run a real resnet18 grid per size (first two sizes)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_data_path(Path(args.child[0]), Path(args.child[1]), args.workers)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    info = {"machine": machine(), "sizes": sizes, "workers": args.workers, "batch": BATCH, "size_px": SIZE}
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info["cpu_flags"] = sorted({f for f in flags.split() if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")})
    start = time.perf_counter()
    sources = distinct_images(args.root / "distinct")
    folders = {n: make_folder(args.root, n, sources) for n in sizes}
    info["folder_seconds"] = round(time.perf_counter() - start, 1)
    sample = sources[:400]
    info["decoders_img_per_s"] = decoders(sample)
    info["decode_limit_img_per_s"] = decode_limit(sources, len(os.sched_getaffinity(0)))
    mid = sizes[1] if len(sizes) > 1 else sizes[0]
    dataset, source = source_split(folders[mid])
    files = list(source.train.x.paths)
    caches = args.root / "caches"
    shutil.rmtree(caches, ignore_errors=True)
    info["plain_loader"] = plain_epoch(folders[mid], args.workers, files)
    info["tlbench_first_pass"] = tlbench_epoch(source.train, dataset.preprocessing, caches / "throughput", args.workers)
    info["tlbench_from_cache"] = tlbench_epoch(source.train, dataset.preprocessing, caches / "throughput", args.workers)
    info["memory"] = {}
    for n in sizes:
        proc = subprocess.run([sys.executable, __file__, "--child", str(folders[n]), str(caches / f"mem{n}"),
                               "--workers", str(args.workers)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        info["memory"][n] = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.grid:
        for n in sizes[:2]:
            shutil.rmtree(args.root / f"runs{n}", ignore_errors=True)  # a finished grid would be skipped
        info["grid"] = {n: grid_run(folders[n], caches / f"grid{n}", args.root / f"runs{n}") for n in sizes[:2]}
        info["grid_date"] = info["machine"].get("date", "?")
    else:  # keep the last --grid run's rows, saying when they were measured
        try:
            previous = json.loads((OUT / "data_pipeline.json").read_text())
        except (OSError, ValueError):
            previous = {}
        if previous.get("grid"):
            info["grid"] = {int(n): g for n, g in previous["grid"].items()}
            info["grid_date"] = previous.get("grid_date", previous["machine"].get("date", "?"))
            info["note"] = (f"The grid rows come from the `--grid` run of {info['grid_date']} "
                            f"(same machine; not re-run here).")
    info["total_seconds"] = round(time.perf_counter() - start, 1)
    report(info)
    return 0


def report(info: dict) -> None:
    from common import write

    plain, first, cached = info["plain_loader"], info["tlbench_first_pass"], info["tlbench_from_cache"]
    mem = info["memory"]
    sizes = info["sizes"]
    rows = [[f"decoder: {name}", f"{v:,.0f} img/s", "one process, one image at a time, 300x300 JPEG -> 224x224"]
            for name, v in info["decoders_img_per_s"].items()]
    rows.append(["decode limit (one process per core)", f"{info['decode_limit_img_per_s']:,.0f} img/s", "tlbench's decode_image"])
    rows.append(["plain ImageFolder + DataLoader epoch", f"{plain['img_per_s']:,.0f} img/s", f"{plain['images']} images, {plain['seconds']} s"])
    rows.append(["tlbench first pass (cache built + epoch)", f"{first['img_per_s']:,.0f} img/s",
                 f"{first['seconds']} s, of which cache {first['cache_seconds']} s; "
                 f"{first['img_per_s'] / plain['img_per_s']:.2f}x plain, "
                 f"{first['images'] / first['cache_seconds'] / info['decode_limit_img_per_s']:.2f} of the decode limit while building"])
    rows.append(["tlbench from the cache (second cell)", f"{cached['img_per_s']:,.0f} img/s",
                 f"{cached['seconds']} s; {cached['img_per_s'] / plain['img_per_s']:.2f}x plain; "
                 f"data time {first['seconds'] / cached['seconds']:.1f}x shorter than the first cell"])
    for n in sizes:
        m = mem[n] if n in mem else mem[str(n)]
        rows.append([f"peak RSS, data path, {n:,} images/domain", f"{m['peak_rss_mb']:,.0f} MiB",
                     f"{m['train_images']} train + {m['test_images']} test images; workers' peak {m['peak_child_rss_mb']:,.0f} MiB"])
    first_mem, last_mem = (mem.get(n, mem.get(str(n)))["peak_rss_mb"] for n in (sizes[0], sizes[-1]))
    for n, g in (info.get("grid") or {}).items():
        rows.append([f"grid (resnet18 224 px, none+dann, tllib), {n:,} images/domain",
                     f"{g['peak_rss_mb']:,.0f} MiB peak RSS" if g["ok"] else "FAILED", f"{g['wall_s']:.0f} s wall"])
    summary = (f"`python benchmarks/data_pipeline.py{' --grid' if info.get('grid') and not info.get('note') else ''}` "
               f"({info['total_seconds']:.0f} s in all, {info['workers']} workers, "
               f"batch {BATCH}, 224 px, tllib preset). Peak RSS of the data path at {sizes[-1]:,} images per domain is "
               f"{last_mem / first_mem:.2f}x that at {sizes[0]:,}. CPU flags: {', '.join(info['cpu_flags']) or 'none listed'}.")
    if info.get("note"):
        summary += " " + info["note"]
    write("data_pipeline", info, rows, ["measure", "value", "detail"], summary)


if __name__ == "__main__":
    raise SystemExit(main())
