"""Benchmark 1: a tlbench run's training vs a hand-written PyTorch loop doing identical work.

Same data tensors, same model (smallcnn), same optimiser (Adam), same batch size and step
counts: source pretraining on MNIST, then a full fine-tune on 10 UCI digits per class.
The tlbench side is a real `Runner.run` (its recorded source + transfer training seconds);
the plain side is the obvious loop. Goal: overhead ratio <= 1.10. Repeated, medians reported.
"""

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, write  # noqa: E402

from tlbench.grid import expand  # noqa: E402
from tlbench.training.model import build_model  # noqa: E402
from tlbench.plugin.discovery import load_plugins  # noqa: E402
from tlbench.execution.runner import Runner  # noqa: E402

REPEATS = 3
TRAIN = {"source_epochs": 1.0, "steps": 150, "batch_size": 64, "latency_repeats": 1, "export_dynamo": False, "int8": False}


def plain_loop(registry, runner, spec):
    """The hand-written equivalent: build, pretrain, fine-tune; returns training seconds."""
    _, dataset, shape, data = runner.inputs(spec)
    src, tgt = data["source_train"], data["target_train"]
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.nonzero(tgt.y == c).flatten()[:10] for c in range(10)])
    shots_x, shots_y = tgt.x[idx], tgt.y[idx]
    model = build_model(registry.get("backbones", "smallcnn"), shape, 10, {"width": 32})
    start = time.perf_counter()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(src), generator=g)
    for step in range(math.ceil(len(src) / 64)):
        b = order[step * 64:(step + 1) * 64]
        loss = F.cross_entropy(model(src.x[b]), src.y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    source_seconds = time.perf_counter() - start
    start = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(TRAIN["steps"]):
        b = torch.randperm(len(shots_y), generator=g)[:64]
        loss = F.cross_entropy(model(shots_x[b]), shots_y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return source_seconds, time.perf_counter() - start


def main():
    registry = load_plugins([])[1]
    config = {"backbone": ["smallcnn"], "source": ["digits:mnist"], "target": ["digits:uci"], "strategy": ["finetune"],
              "loss": ["none"], "shots": [10], "seeds": [0], "train": TRAIN}
    (spec,) = expand(config, registry)
    samples = []
    for repeat in range(REPEATS):
        with tempfile.TemporaryDirectory() as tmp:
            runner = Runner(registry, tmp, "cpu", log=lambda m: None)
            record = runner.run(spec)
            assert record["status"] == "ok", record["error"]
            ours = (record["source_train_seconds"], record["train_seconds"])
            plain = plain_loop(registry, runner, spec)
        samples.append({"tlbench_source_s": ours[0], "tlbench_transfer_s": ours[1], "plain_source_s": plain[0],
                        "plain_transfer_s": plain[1], "ratio": (ours[0] + ours[1]) / (plain[0] + plain[1])})
        print(samples[-1], flush=True)
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    goal = "met" if med["ratio"] <= 1.10 else "NOT met"
    write("overhead_vs_plain_loop", {"machine": machine(), "train": TRAIN, "samples": samples, "median": med},
          [[f"{med['tlbench_source_s']:.2f}", f"{med['plain_source_s']:.2f}", f"{med['tlbench_transfer_s']:.2f}",
            f"{med['plain_transfer_s']:.2f}", f"{med['ratio']:.3f}", goal]],
          ["tlbench source s", "plain source s", "tlbench transfer s", "plain transfer s", "ratio (total)", "goal <= 1.10"],
          f"smallcnn (width 32), MNIST source 1 epoch + 150 fine-tune steps on UCI 10-shot, batch 64, Adam; "
          f"median of {REPEATS} alternating repeats.")


if __name__ == "__main__":
    main()
