"""Lazy splits and the decode cache: the streamed path gives the batches the in-memory path gives,
whatever the worker count; the cache decodes once, and is rebuilt when truncated, corrupted or
stale; a full disk is one line and leaves nothing half-written."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST_TRAIN, read_results, run_cli
from tlbench.plugin.contracts import IMAGE, Preprocessing
from tlbench.plugin.errors import UserError
from tlbench.plugin.sources import ImageFiles, PixelArray
from tlbench.training import decode as decode_module
from tlbench.training.decode_cache import DecodeCache
from tlbench.training.streaming import LazyRows, stream

PRE = Preprocessing(IMAGE, (3, 12, 12), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def write_images(folder: Path, n: int = 10, seed: int = 0, size=(20, 17)) -> list[str]:
    """PNG files (lossless) of random pixels, sizes other than the decode size."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def by_hand(path: str, side: int = 12) -> torch.Tensor:
    """One image as the model should see it: Pillow's RGB pixels, antialiased bilinear resize
    (torch.nn.functional.interpolate on floats, rounded), scaled and normalised by hand."""
    import torch.nn.functional as F
    from PIL import Image

    with Image.open(path) as image:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
    resized = F.interpolate(pixels[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0]
    x = resized.round().clamp(0, 255) / 255.0
    return (x - torch.tensor(PRE.mean).view(3, 1, 1)) / torch.tensor(PRE.std).view(3, 1, 1)


# one uint8 step of rounding, in normalised units (the smallest std is 0.224)
ONE_LEVEL = 1.01 / 255 / 0.224


def streamed(paths, cache, rows=None):
    lazy = LazyRows(ImageFiles(paths))
    return stream(lazy if rows is None else lazy[rows], PRE, PRE.input_shape, "cpu", cache, "test images")


def counting_decodes(monkeypatch) -> list:
    calls = []
    real = decode_module.decode_image

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(decode_module, "decode_image", counted)
    return calls


def test_streamed_rows_match_an_independent_decode(tmp_path):
    paths = write_images(tmp_path / "img")
    x = streamed(paths, DecodeCache(tmp_path / "cache", log=lambda m: None))
    assert x.shape == (10, 3, 12, 12) and len(x) == 10
    batch = x[torch.tensor([7, 2, 2, 9])]
    expected = torch.stack([by_hand(paths[i]) for i in (7, 2, 2, 9)])
    torch.testing.assert_close(batch, expected, atol=ONE_LEVEL, rtol=0)
    torch.testing.assert_close(x[3:5], torch.stack([by_hand(paths[3]), by_hand(paths[4])]), atol=ONE_LEVEL, rtol=0)
    assert torch.equal(x.subset(torch.tensor([1, 4]))[:], x[torch.tensor([1, 4])])


def test_lazy_row_selections_read_nothing_and_compose(tmp_path, monkeypatch):
    paths = write_images(tmp_path / "img")
    lazy = LazyRows(ImageFiles(paths))
    picked = lazy[torch.tensor([True, False] * 5)][torch.tensor([1, 3])]  # rows 2 and 6
    assert picked.rows.tolist() == [2, 6]
    x = stream(picked, PRE, PRE.input_shape, "cpu", DecodeCache(tmp_path / "c", log=lambda m: None), "imgs")
    torch.testing.assert_close(x[:], torch.stack([by_hand(paths[2]), by_hand(paths[6])]), atol=ONE_LEVEL, rtol=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_cache_holds_the_same_bytes_whatever_the_worker_count(tmp_path, workers):
    paths = write_images(tmp_path / "img", n=40)
    serial = DecodeCache(tmp_path / "c0", workers=0, log=lambda m: None).pixels(paths, PRE.input_shape, "imgs")
    parallel = DecodeCache(tmp_path / f"c{workers}", workers=workers, log=lambda m: None).pixels(paths, PRE.input_shape, "imgs")
    assert serial.path.read_bytes() == parallel.path.read_bytes()
    rows = np.random.default_rng(0).permutation(40)[:16]
    assert np.array_equal(serial.read(rows), parallel.read(rows))


def test_the_second_load_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    paths = write_images(tmp_path / "img")
    calls = counting_decodes(monkeypatch)
    first = streamed(paths, DecodeCache(tmp_path / "cache", log=lambda m: None))[:]
    assert len(calls) == 10
    again = streamed(paths, DecodeCache(tmp_path / "cache", log=lambda m: None))[:]  # a new process's view
    assert len(calls) == 10 and torch.equal(first, again)


@pytest.mark.parametrize("damage", ["truncate", "flip_a_byte", "break_the_manifest"])
def test_a_damaged_entry_is_rebuilt_and_says_so(tmp_path, monkeypatch, damage):
    paths = write_images(tmp_path / "img")
    good = streamed(paths, DecodeCache(tmp_path / "cache", log=lambda m: None))[:]
    data = next((tmp_path / "cache").glob("*.u8"))
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:1000])
    elif damage == "flip_a_byte":
        raw = bytearray(data.read_bytes())
        raw[1234] ^= 0xFF
        data.write_bytes(bytes(raw))
    else:
        data.with_suffix(".json").write_text("{not json")
    calls, logged = counting_decodes(monkeypatch), []
    rebuilt = streamed(paths, DecodeCache(tmp_path / "cache", log=logged.append))[:]
    assert len(calls) == 10 and torch.equal(rebuilt, good)
    assert any("rebuilding" in line for line in logged), logged


def test_a_changed_image_file_gets_a_new_entry(tmp_path, monkeypatch):
    paths = write_images(tmp_path / "img")
    cache = DecodeCache(tmp_path / "cache", log=lambda m: None)
    before = streamed(paths, cache)[:]
    write_images(tmp_path / "other", n=1, seed=99)
    Path(paths[4]).write_bytes((tmp_path / "other" / "000.png").read_bytes())
    calls = counting_decodes(monkeypatch)
    after = streamed(paths, cache)[:]
    assert len(calls) == 10
    assert torch.equal(after[:4], before[:4]) and not torch.equal(after[4], before[4])
    torch.testing.assert_close(after[4], by_hand(paths[4]), atol=ONE_LEVEL, rtol=0)


def test_a_full_disk_is_one_line_and_leaves_no_partial_entry(tmp_path, monkeypatch):
    import os

    paths = write_images(tmp_path / "img")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(UserError, match="ran out of disk space") as info:
        streamed(paths, DecodeCache(tmp_path / "cache", log=lambda m: None))
    assert "\n" not in str(info.value)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_the_size_limit_evicts_the_least_recently_used_entry(tmp_path):
    a, b = write_images(tmp_path / "a", n=10, seed=1), write_images(tmp_path / "b", n=10, seed=2)
    one_entry = 10 * 3 * 12 * 12
    cache = DecodeCache(tmp_path / "cache", max_bytes=1.5 * one_entry, log=lambda m: None)
    first = cache.pixels(a, PRE.input_shape, "a")
    cache.pixels(b, PRE.input_shape, "b")
    assert not first.path.exists() and len(list((tmp_path / "cache").glob("*.u8"))) == 1


def test_pixel_arrays_stream_like_the_tensors_they_hold(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (20, 3, 12, 12), dtype=np.uint8)
    array = np.lib.format.open_memmap(tmp_path / "px.npy", mode="w+", dtype=np.uint8, shape=pixels.shape)
    array[:] = pixels
    x = stream(LazyRows(PixelArray(array)), PRE, PRE.input_shape, "cpu", None, "px")
    index = torch.tensor([5, 0, 19])
    expected = (torch.from_numpy(pixels[[5, 0, 19]]).float() / 255.0 - torch.tensor(PRE.mean).view(1, 3, 1, 1)) \
        / torch.tensor(PRE.std).view(1, 3, 1, 1)
    torch.testing.assert_close(x[index], expected, atol=ONE_LEVEL, rtol=0)
    with pytest.raises(ValueError, match="uint8"):
        PixelArray(pixels.astype(np.float32))


def test_a_lazy_imagefolder_cell_trains_exactly_like_the_in_memory_one(tmp_path):
    """Same files, same seed: the streamed run and the in-memory run reach bit-identical weights."""
    for d, domain in enumerate(("amazon", "webcam")):
        for c, name in enumerate(("bike", "mug")):
            write_images(tmp_path / "office" / domain / name, n=6, seed=10 * d + c, size=(30, 26))
    states, accs = [], []
    for lazy in ("true", "false"):
        out = tmp_path / f"runs-{lazy}"
        proc = run_cli("run", "--backbone", "smallcnn", "--source", "imagefolder:amazon", "--target", "imagefolder:webcam",
                       "--data-root", tmp_path / "office", "--set", "imagefolder.size=16", "--set", f"imagefolder.lazy={lazy}",
                       "--set", f"train.decode_cache_dir={tmp_path / 'cache'}", "--shots", "2", "--results-dir", out,
                       *FAST_TRAIN)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (result,) = read_results(out)
        assert result["status"] == "ok"
        accs.append((result["target_acc"], result["source_acc"]))
        run_dir = next(p for p in out.iterdir() if p.name.endswith(result["run_id"]))
        states.append(torch.load(run_dir / "model.pt", weights_only=True))
    assert accs[0] == accs[1]
    assert states[0].keys() == states[1].keys() and all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 4  # two domains x train/test, decoded once each


def test_a_streamed_cell_never_reads_a_split_whole(tmp_path, monkeypatch):
    """Evaluation, validators, ONNX parity, input statistics and INT8 calibration all slice the
    streamed split: reading one whole would make memory grow with the dataset."""
    from tlbench.training.streaming import StreamedInputs

    def refuse(self):
        raise AssertionError(f"a streamed split of {len(self)} rows was read whole")

    monkeypatch.setattr(StreamedInputs, "materialise", refuse)
    for d, domain in enumerate(("amazon", "webcam")):
        for c, name in enumerate(("bike", "mug")):
            write_images(tmp_path / "office" / domain / name, n=6, seed=10 * d + c, size=(30, 26))
    out = tmp_path / "runs"
    proc = run_cli("run", "--backbone", "smallcnn", "--source", "imagefolder:amazon", "--target", "imagefolder:webcam",
                   "--data-root", tmp_path / "office", "--set", "imagefolder.size=16", "--loss", "dann",
                   "--set", "train.model_selection=snd", "--shots", "2", "--results-dir", out, *FAST_TRAIN,
                   "--set", "train.int8=true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok", result.get("error")
    assert result["int8_target_acc"] is not None and result["onnx_top1_agreement"] == 1.0


def test_jpegs_decode_through_libjpeg_turbo_and_a_broken_one_is_one_line(tmp_path):
    from PIL import Image

    from tlbench.plugin.sources import decode_image

    rng = np.random.default_rng(4)
    smooth = (np.linspace(0, 255, 40)[None, :, None] * np.ones((30, 1, 3)) + rng.normal(0, 3, (30, 40, 3))).clip(0, 255)
    Image.fromarray(smooth.astype(np.uint8)).save(tmp_path / "a.jpg", quality=95)
    got = decode_image(str(tmp_path / "a.jpg"), 15, 20).astype(np.float32)
    with Image.open(tmp_path / "a.jpg") as image:  # Pillow's decode, resized by hand
        ref = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None]
    ref = torch.nn.functional.interpolate(ref, size=(15, 20), mode="bilinear", antialias=True)[0].numpy()
    assert got.shape == (3, 15, 20) and np.abs(got - ref).max() <= 3  # two libjpeg builds, one resize
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    with pytest.raises(UserError, match="cannot read image .*broken.jpg") as info:
        decode_image(str(tmp_path / "broken.jpg"), 8, 8)
    assert "\n" not in str(info.value)


def test_streamed_data_is_augmented_on_uint8_pixels_with_the_documented_shapes(tmp_path):
    from tlbench.training.loop import draw
    from tlbench.training.presets import training_view

    paths = write_images(tmp_path / "img", n=8)
    x = streamed(paths, DecodeCache(tmp_path / "cache", log=lambda m: None))
    index = torch.arange(8)
    for preset in ("tllib", "domainbed"):
        a = draw(x, index, training_view(preset, PRE, torch.Generator().manual_seed(0)))
        b = draw(x, index, training_view(preset, PRE, torch.Generator().manual_seed(0)))
        assert a.shape == (8, 3, 12, 12) and torch.equal(a, b) and not torch.equal(a, x[index])
    assert torch.equal(draw(x, index, None), x[index])
