"""Deployable models: INT8 quantization, `tlbench predict` (onnxruntime only), `tlbench export`,
and the speed settings' CPU-side logic."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tlbench.settings import TrainSettings
from PIL import Image

from tlbench.training.model import build_model
from tlbench.deploy.onnx_export import export_onnx
from tlbench.deploy.ort import make_session
from tlbench.deploy.quantize import DYNAMIC, STATIC, choose_method, int8_report, quantize_model
from tlbench.training.speed import HostTensor, SpeedSettings, loader_batches, resolve_speed
from tlbench.training.loop import pretrain_source, predict_logits

from conftest import TOY_PLUGINS, read_results, run_cli

DIGITS_RUN = ["run", "--backbone", "smallcnn", "--source", "digits:mnist", "--target", "digits:uci", "--strategy", "finetune",
              "--loss", "none", "--shots", "10", "--seeds", "0", "--set", "smallcnn.width=8", "--set", "train.steps=40",
              "--set", "train.source_epochs=1", "--set", "train.latency_repeats=2", "--set", "train.export_dynamo=false"]


def _logits(session, x):
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One real transfer run (MNIST -> UCI digits, smallcnn) with its exported models."""
    directory = tmp_path_factory.mktemp("digits")
    done = run_cli(*DIGITS_RUN, "--results-dir", directory)
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = read_results(directory)
    run_dir = next(p for p in directory.iterdir() if p.name.endswith(result["run_id"]))
    return result, run_dir


def test_choice_of_quantization_follows_the_graph_not_names():
    assert choose_method(["Conv", "Relu", "Gemm"]) == STATIC  # 2-D or 1-D CNN alike
    assert choose_method(["Transpose", "GRU", "Gemm"]) == DYNAMIC and choose_method(["LSTM"]) == DYNAMIC


def test_static_int8_cnn_loads_and_classifies(registry, tmp_path, capfd):
    toy = registry.get("datasets", "toy").obj()
    train, test = toy.load("a").train, toy.load("a").test
    torch.manual_seed(0)
    model = build_model(registry.get("backbones", "smallcnn"), (1, 8, 8), 3, {"width": 8})
    pretrain_source(model, train, 5, 32, 0.01, torch.Generator().manual_seed(0))
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    export_onnx(model, test.x[:2], fp32, {"tlbench.labels": ["zero", "one", "two"]}, dynamo=False)
    capfd.readouterr()
    method = quantize_model(fp32, int8, train.x.numpy())
    assert method == STATIC
    assert capfd.readouterr().out == ""  # the percentile calibrator's progress lines stay out of a grid's output
    session, provider = make_session(int8, "cpu")
    assert provider == "CPUExecutionProvider"
    assert any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(int8)).graph.node)
    x = test.x.numpy()
    fp32_pred = _logits(make_session(fp32)[0], x).argmax(1)
    int8_pred = _logits(session, x).argmax(1)
    fp32_acc, int8_acc = (fp32_pred == test.y.numpy()).mean(), (int8_pred == test.y.numpy()).mean()
    assert fp32_acc > 0.8, fp32_acc  # the model learned something, so agreement means something
    assert abs(fp32_acc - int8_acc) <= 0.05 and (fp32_pred == int8_pred).mean() >= 0.9
    meta = session.get_modelmeta().custom_metadata_map  # labels survive quantization (predict needs them)
    assert json.loads(meta["tlbench.labels"]) == ["zero", "one", "two"]
    assert int8.stat().st_size < fp32.stat().st_size


class TinyGRU(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(4, 16, batch_first=True)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_dynamic_int8_rnn_loads_and_keeps_dynamic_length(tmp_path):
    torch.manual_seed(0)
    model = TinyGRU().eval()
    fp32, int8 = tmp_path / "g.onnx", tmp_path / "g.int8.onnx"
    export_onnx(model, torch.randn(2, 10, 4), fp32, {}, dynamo=False)
    assert quantize_model(fp32, int8, None) == DYNAMIC
    session, _ = make_session(int8)
    x = torch.randn(5, 17, 4)  # another batch size and sequence length
    with torch.no_grad():
        ref = model(x).numpy()
    out = _logits(session, x.numpy())
    assert out.shape == (5, 3) and np.max(np.abs(out - ref)) < 0.1


class TinyCNN1d(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 16, 3, padding=1)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):  # (batch, time, features), like the sequence backbones
        return self.head(torch.relu(self.conv(x.transpose(1, 2))).mean(2))


def test_sequence_cnn_takes_the_static_path_and_keeps_dynamic_length(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN1d().eval()
    fp32, int8 = tmp_path / "c.onnx", tmp_path / "c.int8.onnx"
    export_onnx(model, torch.randn(2, 10, 4), fp32, {}, dynamo=False)
    assert quantize_model(fp32, int8, torch.randn(64, 10, 4).numpy()) == STATIC
    assert any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(int8)).graph.node)
    x = torch.randn(5, 23, 4)  # another batch size and sequence length
    with torch.no_grad():
        ref = model(x).numpy()
    out = _logits(make_session(int8)[0], x.numpy())
    assert out.shape == (5, 3) and np.max(np.abs(out - ref)) < 0.1


def test_int8_failure_is_recorded_not_raised(tmp_path, monkeypatch):
    import tlbench.deploy.quantize as quantize

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel")

    monkeypatch.setattr(quantize, "quantize_model", broken)
    x = np.zeros((2, 1, 8, 8), np.float32)
    report = int8_report(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", calibration=x, test_x=x,
                         test_y=np.zeros(2, np.int64), fp32_acc=1.0, latency_inputs=(x[:1], x))
    assert report == {"int8_error": "RuntimeError: no kernel"}


def test_run_records_int8_fields_and_saves_weights(digits_run):
    result, run_dir = digits_run
    assert result["status"] == "ok" and result["int8_error"] is None
    assert result["int8_method"] == "static-qdq"
    assert abs(result["int8_acc_drop"] - (result["onnx_target_acc"] - result["int8_target_acc"])) < 1e-6
    assert result["int8_acc_drop"] <= 0.05, result
    for key in ("int8_latency_ms", "int8_latency_ms_b64", "int8_size_mb", "onnx_size_mb"):
        assert result[key] > 0
    assert result["ort_settings"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert result["ort_settings"]["intra_op_num_threads"] >= 1
    assert result["ort_provider"] == "CPUExecutionProvider"
    assert result["speed"]["amp"] is False and result["speed"]["device"] == "cpu"
    assert {"export", "verify", "int8", "ort_latency", "torch_latency"} <= set(result["deploy_seconds"])
    assert "reference" not in result["deploy_seconds"]  # a CPU run verifies against the evaluation's logits
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_predict_png_matches_the_runs_torch_evaluation(registry, digits_run, tmp_path):
    result, run_dir = digits_run
    digits = registry.get("datasets", "digits").obj()
    test = digits.load("uci").test
    model = build_model(registry.get("backbones", "smallcnn"), (1, 28, 28), 10, {"width": 8})
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    logits = predict_logits(model, test.x)
    # the stored model reproduces the run's own evaluation
    assert abs(float((logits.argmax(1) == test.y).float().mean()) - result["target_acc"]) < 1e-6
    top2 = logits.topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]
    confident = [i for i in margin.argsort(descending=True)[:3].tolist() if margin[i] > 0.2]  # 8-bit rounding cannot flip these
    assert confident, "no confidently classified test example"
    pre = digits.preprocessing
    paths = []
    for i in confident:  # back to 8-bit pixels, the way a user's image would arrive
        raw = test.x[i, 0] * pre.std[0] + pre.mean[0]
        pixels = (raw.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(pixels, mode="L").save(paths[-1])
    done = run_cli("predict", run_dir / "model.onnx", *paths, "--json", "-k", "3")
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert [a["top"][0]["label"] for a in answers] == [digits.classes[int(logits[i].argmax())] for i in confident]
    assert all(len(a["top"]) == 3 and a["top"][0]["probability"] >= a["top"][1]["probability"] for a in answers)
    # the int8 model carries the metadata too and classifies the same confident examples alike
    int8 = run_cli("predict", run_dir / "model.int8.onnx", *paths, "--json")
    assert int8.returncode == 0, int8.stderr
    assert [a["top"][0]["label"] for a in json.loads(int8.stdout)] == [a["top"][0]["label"] for a in answers]


def test_predict_imports_no_torch(digits_run, tmp_path):
    _, run_dir = digits_run
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 28, 28), np.float32))
    code = (
        "import sys; from tlbench.cli.main import main; "
        f"rc = main(['predict', {str(run_dir / 'model.onnx')!r}, {str(tmp_path / 'x.npy')!r}, '--json']); "
        "print('TORCH' if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 'NO-TORCH', rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "NO-TORCH 0", done.stdout + done.stderr
    assert '"x.npy[1]"' in done.stdout.replace(str(tmp_path) + "/", "")


def test_predict_bad_inputs_give_one_line_and_exit_2(digits_run, tmp_path):
    _, run_dir = digits_run
    model = run_dir / "model.onnx"
    (tmp_path / "notes.png").write_text("not an image")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 28), np.float32))
    bare = tmp_path / "bare.onnx"
    export_onnx(TinyGRU(), torch.randn(2, 5, 4), bare, {}, dynamo=False)
    cases = {
        (model, tmp_path / "notes.png"): "not a readable image",
        (model, tmp_path / "wrong.npy"): "has shape (3, 28)",
        (bare, tmp_path / "wrong.npy"): "no tlbench metadata",
        (tmp_path / "missing.onnx", tmp_path / "wrong.npy"): "does not exist",
    }
    for (onnx_path, item), expected in cases.items():
        done = run_cli("predict", onnx_path, item)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_export_rebuilds_a_stored_run(digits_run, tmp_path):
    result, run_dir = digits_run
    out = tmp_path / "again.onnx"
    done = run_cli("export", run_dir, "--output", out, "--json", "--no-int8")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["onnx_top1_agreement"] == 1.0 and report["onnx_max_abs_diff"] < 1e-3
    assert abs(report["torch_target_acc"] - result["target_acc"]) < 1e-6
    assert "int8_method" not in report and not (tmp_path / "again.int8.onnx").exists()
    # the re-exported model carries the same training-input statistics as the run's, so predict can warn
    import onnx

    def stats(path):
        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}["tlbench.input_stats"]

    assert json.loads(stats(out)) == json.loads(stats(run_dir / "model.onnx"))
    bad = run_cli("export", tmp_path)
    assert bad.returncode == 2 and "result.json" in bad.stderr


def test_int8_switch_skips_quantization(tmp_path):
    done = run_cli("--plugins-dir", TOY_PLUGINS, "run", "--backbone", "smallcnn", "--source", "toy:a", "--target", "toy:b",
                   "--shots", "5", "--results-dir", tmp_path, "--set", "smallcnn.width=8", "--set", "train.steps=2",
                   "--set", "train.source_epochs=1", "--set", "train.latency_repeats=1", "--set", "train.export_dynamo=false",
                   "--set", "train.int8=false")
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = read_results(tmp_path)
    assert result["status"] == "ok" and "int8_target_acc" not in result
    assert not list(tmp_path.glob("*/model.int8.onnx"))


# -- speed settings (CUDA paths checked for their logic; no GPU needed) ------------------------
def test_cpu_keeps_the_plain_path():
    speed = resolve_speed(TrainSettings(amp=True, channels_last=True, device_data_max_mb=0.0), "cpu")
    assert speed.amp_dtype is None and not speed.channels_last and not speed.non_blocking
    assert speed.keep_on_device(torch.zeros(1000, 1000))  # host memory is the device


def test_cuda_settings_pick_bf16_where_supported_and_honour_switches():
    train = TrainSettings(amp=True, channels_last=True, cudnn_benchmark=True, non_blocking=True,
                          device_data_max_mb=1.0, loader_workers=2, pin_memory=True)
    assert resolve_speed(train, "cuda", bf16_supported=True).amp_dtype == "bfloat16"
    fp16 = resolve_speed(train, "cuda", bf16_supported=False)
    assert fp16.amp_dtype == "float16" and fp16.as_dict()["amp"] is True
    off = resolve_speed(train.replace(amp=False, channels_last=False), "cuda", bf16_supported=True)
    assert off.amp_dtype is None and off.grad_scaler() is None and off.channels_last is False
    # the size threshold decides what stays on the GPU
    assert fp16.keep_on_device(torch.zeros(100, 100)) and not fp16.keep_on_device(torch.zeros(1000, 1000))
    model = torch.nn.Conv2d(1, 4, 3)
    resolve_speed(train, "cuda", bf16_supported=True).prepare_model(model, 4)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)


def test_host_tensor_and_loader_serve_batches():
    x, y = torch.arange(40, dtype=torch.float32).reshape(10, 4), torch.arange(10)
    host = HostTensor(x, "cpu", pin_memory=True, non_blocking=True)
    assert len(host) == 10 and host.shape == x.shape
    assert torch.equal(host[torch.tensor([3, 1])], x[[3, 1]]) and torch.equal(host[2:4], x[2:4])
    batches = loader_batches(host, y, 4, torch.Generator().manual_seed(0), SpeedSettings("cpu"))
    seen = [next(batches) for _ in range(3)]  # one pass: 4 + 4 + 2, every row once
    assert sorted(torch.cat([b[1] for b in seen]).tolist()) == list(range(10))
    assert all(torch.equal(xb, x[yb]) for xb, yb in seen)
    # holding out a validation slice keeps host-resident inputs on the host, rows matching labels
    from tlbench.plugin.contracts import Split
    from tlbench.training.selection import holdout

    train, val = holdout(Split(host, y), torch.Generator().manual_seed(0), fraction=0.3)
    assert isinstance(train.x, HostTensor) and isinstance(val.x, HostTensor)
    assert len(train) == 7 and len(val) == 3
    assert all(torch.equal(part.x.cpu(), x[part.y]) for part in (train, val))


def test_predict_warns_on_an_inverted_digit_not_on_a_test_digit(registry, digits_run, tmp_path):
    _, run_dir = digits_run
    meta = json.loads(make_session(run_dir / "model.onnx")[0].get_modelmeta().custom_metadata_map["tlbench.input_stats"])
    assert meta["threshold"] > 0 and len(meta["center"]) == 2  # one channel: its mean and its std
    digits = registry.get("datasets", "digits").obj()
    test, pre = digits.load("uci").test, digits.preprocessing
    paths = {}
    for i in range(3):  # as 8-bit images, the way a user's files arrive
        raw = (test.x[i, 0] * pre.std[0] + pre.mean[0]).clamp(0, 1)
        for kind, pixels in (("plain", raw), ("inverted", 1 - raw)):
            paths.setdefault(kind, []).append(tmp_path / f"{kind}{i}.png")
            Image.fromarray((pixels * 255).round().to(torch.uint8).numpy(), mode="L").save(paths[kind][-1])
    for model in ("model.onnx", "model.int8.onnx"):  # the statistics travel into the INT8 model too
        done = run_cli("predict", run_dir / model, *paths["plain"], *paths["inverted"], "--json")
        assert done.returncode == 0, done.stderr
        answers = json.loads(done.stdout)
        assert len(answers) == 6 and all(a["top"] for a in answers)  # still predicts every input
        warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warned) == 3 and all("inverted" in line and "unlike the training inputs" in line for line in warned)
        assert [("warning" in a) for a in answers] == [False] * 3 + [True] * 3


def test_verify_reruns_a_real_digits_cell_identically(digits_run, tmp_path):
    """`tlbench verify` on a finished real cell (MNIST -> UCI, the default grid's pair) re-runs it
    from its recorded spec in a scratch folder and gets the same numbers."""
    import shutil

    _, run_dir = digits_run
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / run_dir.name, ignore=shutil.ignore_patterns("*.onnx", "*.pt"))
    done = run_cli("verify", runs, "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["cells"][0]["verdict"] == "identical", done.stdout + done.stderr
