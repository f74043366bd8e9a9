"""The latency helper: warm-up, device synchronisation after every call, median of repeats."""

import torch

import tlbench.utils.timing as timing
from tlbench.settings import TrainSettings
from tlbench.training.loop import synchronize


def test_median_ms_syncs_after_every_call_and_reports_the_median(monkeypatch):
    calls, syncs = [], []
    # perf_counter ticks (seconds): repeats take 5 ms, 1 ms, 3 ms, 100 ms, 2 ms -> median 3 ms
    ticks = iter([0.0, 0.005, 1.0, 1.001, 2.0, 2.003, 3.0, 3.1, 4.0, 4.002])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    result = timing.median_ms(lambda: calls.append(1), repeats=5, warmup=2, sync=lambda: syncs.append(len(calls)))
    assert abs(result - 3.0) < 1e-9
    assert len(calls) == 7  # 2 warm-up + 5 timed
    # the sync ran after each call, before the clock was read
    assert syncs == list(range(1, 8))


def test_median_is_robust_to_one_slow_outlier(monkeypatch):
    ticks = iter([0.0, 0.001, 1.0, 1.001, 2.0, 2.5])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    assert abs(timing.median_ms(lambda: None, repeats=3, warmup=0) - 1.0) < 1e-9


def test_cuda_device_synchronises_through_torch(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: seen.append(str(device)))
    synchronize("cuda:0")
    synchronize("cpu")
    assert seen == ["cuda:0"]


def test_deployment_times_torch_with_a_cuda_sync_on_gpu_runs(monkeypatch):
    """deploy_cell passes a sync that calls torch.cuda.synchronize when its device is CUDA, and
    times batch 64 after a single warm-up call."""
    import tlbench.execution.deployment as deployment

    captured = []
    real = deployment.median_ms

    def spy(fn, repeats=30, warmup=3, sync=None):
        captured.append((sync, warmup))
        return real(fn, repeats=1, warmup=0, sync=sync)

    seen = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: seen.append(str(device)))
    monkeypatch.setattr(deployment, "median_ms", spy)

    class Stop(Exception):
        pass

    class Model(torch.nn.Module):
        def forward(self, x):
            return x

        def cpu(self):
            raise Stop

    class Split:
        x = torch.zeros(4, 3)
        y = torch.zeros(4, dtype=torch.long)

    class Spec:
        train = TrainSettings.from_dict({"latency_repeats": 3, "eval_batch_size": 8})

    try:
        deployment.deploy_cell(Spec(), Model(), None, (3,), Split(), None, "cuda", {})
    except Stop:
        pass
    assert len(captured) == 2 and all(callable(sync) for sync, _ in captured)
    assert [warmup for _, warmup in captured] == [3, deployment.B64_WARMUP]
    assert seen and all(d == "cuda" for d in seen)
