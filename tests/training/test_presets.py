"""train.augment presets: documented shapes, a view per image, repeatable from the seed, applied
to training batches only (never evaluation, validators or export)."""

from __future__ import annotations

import pytest
import torch

from conftest import FAST_TRAIN, TOY_PLUGINS, read_results, run_cli
from tlbench.grid.spec import RunSpec
from tlbench.plugin.contracts import IMAGE, Preprocessing
from tlbench.plugin.errors import UserError
from tlbench.settings import TrainSettings
from tlbench.training import presets
from tlbench.training.presets import TrainingView, training_view

RGB = Preprocessing(IMAGE, (3, 32, 32), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def batch(n=6, channels=3, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    one = torch.randn(1, channels, side, side, generator=g)
    return one.repeat(n, 1, 1, 1)  # identical images: any difference comes from the view


@pytest.mark.parametrize("preset", ["tllib", "domainbed"])
def test_each_preset_keeps_the_shape_and_draws_a_view_per_image(preset):
    x = batch()
    out = training_view(preset, RGB, torch.Generator().manual_seed(1))(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert len({tuple(img.flatten()[:50].tolist()) for img in out}) == len(x)  # every image its own crop
    again = training_view(preset, RGB, torch.Generator().manual_seed(1))(x)
    assert torch.equal(out, again)  # the same seed gives the same views
    other = training_view(preset, RGB, torch.Generator().manual_seed(2))(x)
    assert not torch.equal(out, other)


def _reference_pixels_view(preset: str, pixels: torch.Tensor, view_seed: int) -> torch.Tensor:
    """The documented recipe written out with torchvision alone: one seed drawn from the view's
    generator, then each image through Compose([RandomResizedCrop, flip]) and, for domainbed,
    Compose([ColorJitter(0.3, 0.3, 0.3, 0.3), RandomGrayscale(0.1)]), in order."""
    from torchvision.transforms import v2

    side = pixels.shape[-1]
    low = {"tllib": 0.08, "domainbed": 0.7}[preset]
    geometric = v2.Compose([v2.RandomResizedCrop((side, side), scale=(low, 1.0), antialias=True), v2.RandomHorizontalFlip()])
    colour = v2.Compose([v2.ColorJitter(0.3, 0.3, 0.3, 0.3), v2.RandomGrayscale(0.1)]) if preset == "domainbed" else None
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(view_seed)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = []
        for image in pixels:
            image = geometric(image)
            out.append(colour(image) if colour is not None else image)
    return torch.stack(out)


@pytest.mark.parametrize("preset", ["tllib", "domainbed"])
def test_planned_views_equal_the_recipe_run_image_by_image_whatever_the_thread_count(preset):
    pixels = torch.randint(0, 256, (24, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    expected = _reference_pixels_view(preset, pixels, view_seed=5)
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            got = training_view(preset, RGB, torch.Generator().manual_seed(5)).on_pixels(pixels)
            assert got.dtype == torch.uint8 and torch.equal(got, expected), count
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("preset", ["tllib", "domainbed"])
def test_views_normalised_where_they_are_made_equal_the_batch_formula(preset):
    from tlbench.plugin.sources import normalise_pixels, pixel_normaliser

    pixels = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    views = training_view(preset, RGB, torch.Generator().manual_seed(9)).on_pixels(pixels)
    fused = training_view(preset, RGB, torch.Generator().manual_seed(9)).on_pixels(pixels, finish=pixel_normaliser(RGB, 3))
    assert fused.dtype == torch.float32 and torch.equal(fused, normalise_pixels(views, RGB))
    # and the batch formula is (x * scale - mean) / std, written out here by hand
    mean, std = torch.tensor(RGB.mean).view(1, 3, 1, 1), torch.tensor(RGB.std).view(1, 3, 1, 1)
    assert torch.allclose(fused, (views.double() * RGB.scale - mean.double()).div(std.double()).float(), atol=1e-5)


def test_domainbed_colour_steps_work_on_grey_images_and_keep_the_normalisation():
    grey = Preprocessing(IMAGE, (1, 28, 28), (0.5,), (0.25,))
    x = (torch.rand(4, 1, 28, 28) - 0.5) / 0.25
    out = training_view("domainbed", grey, torch.Generator().manual_seed(0))(x)
    assert out.shape == (4, 1, 28, 28)
    pixels = out * 0.25 + 0.5
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # back in the normalised range of [0, 1] pixels


def test_none_and_sequences_get_no_view():
    assert training_view("none", RGB, torch.Generator()) is None
    seq = Preprocessing("sequence", (20, 6), (0.0,) * 6, (1.0,) * 6)
    assert training_view("tllib", seq, torch.Generator()) is None


def test_the_preset_is_a_checked_setting_that_changes_the_run_id_and_source_model():
    with pytest.raises(UserError, match="`augment` = 'flip' is not one of none, tllib, domainbed"):
        TrainSettings(augment="flip")
    cell = ("smallcnn", "digits:mnist", "digits:uci", "finetune", "none", 10, 0)
    plain, tllib = RunSpec(*cell), RunSpec(*cell, train=TrainSettings(augment="tllib"))
    assert plain.run_id != tllib.run_id and plain.source_key() != tllib.source_key()
    assert "augment" not in plain.source_key()["train"]  # the default leaves earlier ids and caches alone


def test_a_cell_augments_training_batches_only(tmp_path, monkeypatch):
    """The view raises if it is ever asked for while the cell evaluates, validates or exports."""
    from tlbench.execution import runner as runner_module

    calls, evaluating = [], []
    real_call = TrainingView.__call__

    def guarded(self, x):
        if evaluating:
            raise AssertionError("augmentation applied outside training")
        calls.append(len(x))
        return real_call(self, x)

    def outside_training(fn):
        def wrapped(*args, **kwargs):
            evaluating.append(True)
            try:
                return fn(*args, **kwargs)
            finally:
                evaluating.pop()
        return wrapped

    monkeypatch.setattr(TrainingView, "__call__", guarded)
    for name in ("evaluate_cell", "deploy_cell", "score_validators", "cell_transferability"):
        monkeypatch.setattr(runner_module, name, outside_training(getattr(runner_module, name)))
    out = tmp_path / "runs"
    proc = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                   "--loss", "dann", "--shots", "5", "--set", "train.augment=domainbed", "--results-dir", out, *FAST_TRAIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (result,) = read_results(out)
    assert result["status"] == "ok", result.get("error")
    # source training (1 epoch of toy:a) plus 4 transfer steps of 3 parts (shots, source, unlabeled)
    assert len(calls) > 12 and result["train"]["augment"] == "domainbed"


@pytest.mark.parametrize("height,width", [(40, 40), (224, 224), (300, 200), (3, 120), (120, 3), (1, 1)])
def test_crop_parameters_are_torchvisions_draw_for_draw(height, width):
    """The fast planner draws the same crops as RandomResizedCrop.make_params from the same
    generator state, the centred fallback included (thin images make every try fail)."""
    from torchvision.transforms import v2

    for scale in ((0.08, 1.0), (0.7, 1.0)):
        step = v2.RandomResizedCrop((16, 16), scale=scale, antialias=True)
        image = torch.zeros(3, height, width, dtype=torch.uint8)
        for seed in range(40):
            torch.manual_seed(seed)
            ours = presets._crop_params(step, height, width)
            after_ours = torch.rand(1)
            torch.manual_seed(seed)
            theirs = step.make_params([image])
            assert ours == theirs and torch.equal(after_ours, torch.rand(1)), (scale, seed)


def test_a_reused_batch_buffer_is_never_one_still_in_use():
    """Float batches are recycled only when nothing (the batch, a slice of it, a saved
    activation) still holds them: a batch kept by the caller keeps its values."""
    from tlbench.plugin.sources import pixel_normaliser

    if presets._unshared is presets._never:
        pytest.skip("this torch has no storage use count; batches are never reused")
    pixels = torch.randint(0, 256, (16, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    view = training_view("tllib", RGB, torch.Generator().manual_seed(0))
    into = pixel_normaliser(RGB, 3)
    kept = view.on_pixels(pixels, finish=into)
    snapshot = kept.clone()
    part = view.on_pixels(pixels, finish=into)[:4]  # only a slice of the second batch survives
    held = {kept.data_ptr(), part.data_ptr()}
    for _ in range(3):
        fresh = view.on_pixels(pixels, finish=into)
        assert fresh.data_ptr() not in held  # never handed out twice while held
        del fresh
    assert torch.equal(kept, snapshot)
    released = kept.data_ptr()
    del kept
    assert view.on_pixels(pixels, finish=into).data_ptr() == released  # freed memory is reused


def test_augmenting_leaves_the_callers_thread_count_alone():
    pixels = torch.randint(0, 256, (32, 3, 24, 24), dtype=torch.uint8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        training_view("domainbed", RGB, torch.Generator().manual_seed(0)).on_pixels(pixels)
        assert torch.get_num_threads() == 2  # the pool's threads run single-threaded kernels
    finally:
        torch.set_num_threads(threads)
