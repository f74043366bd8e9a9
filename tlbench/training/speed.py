"""Training speed settings: where the data lives, and the CUDA fast paths.

- Datasets up to ``device_data_max_mb`` live as tensors on the training device and batches are
  cut by indexing (no per-sample DataLoader round trip). Larger ones stay in host memory
  (pinned): source pretraining streams them through a ``DataLoader`` with worker processes and
  pinned batches, random access (transfer steps) gathers on the host and copies asynchronously.
- On CUDA only: automatic mixed precision (bf16 where the GPU supports it, else fp16 with a
  gradient scaler), ``channels_last`` memory format for 4-D image models, ``cudnn.benchmark``,
  and ``non_blocking`` host-to-device copies. On a CPU all of these stay off, so the CPU path
  is the plain loop.

Every setting is a ``[train]`` option (``--set train.amp=false``) and the settings actually in
effect are recorded in result.json as ``speed``.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch

from tlbench.settings.train import TrainSettings


@dataclass(frozen=True)
class SpeedSettings:
    """The speed settings in effect for one run (after asking what the device supports)."""

    device: str = "cpu"
    amp_dtype: str | None = None  # "bfloat16" | "float16" | None (off)
    channels_last: bool = False
    cudnn_benchmark: bool = False
    non_blocking: bool = False
    device_data_max_mb: float = float("inf")
    loader_workers: int = 0
    pin_memory: bool = False

    @property
    def cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"

    def as_dict(self) -> dict:
        out = asdict(self)
        out["amp"] = self.amp_dtype is not None
        if out["device_data_max_mb"] == float("inf"):
            out["device_data_max_mb"] = None
        return out

    def autocast(self):
        """The autocast context for a forward pass (a no-op without AMP)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=getattr(torch, self.amp_dtype))

    def grad_scaler(self):
        """A GradScaler for fp16 AMP, else None (bf16 and fp32 need none)."""
        if self.amp_dtype == "float16":
            return torch.amp.GradScaler("cuda")
        return None

    def prepare_model(self, model: torch.nn.Module, input_rank: int) -> torch.nn.Module:
        """channels_last for image models (4-D inputs) when enabled."""
        if self.channels_last and input_rank == 4:
            model = model.to(memory_format=torch.channels_last)
        return model

    def configure_backends(self) -> None:
        """Process-wide switches (cudnn autotuning)."""
        if self.cuda:
            torch.backends.cudnn.benchmark = self.cudnn_benchmark

    def keep_on_device(self, tensor: torch.Tensor) -> bool:
        """Whether a dataset tensor of this size lives on the training device."""
        return not self.cuda or tensor.numel() * tensor.element_size() / 1e6 <= self.device_data_max_mb


def resolve_speed(train: TrainSettings, device: str, bf16_supported=None) -> SpeedSettings:
    """The settings in effect for ``train`` on ``device`` (CUDA features off on a CPU)."""
    if torch.device(device).type != "cuda":
        return SpeedSettings(device=device)
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    amp = None
    if train.amp:
        amp = "bfloat16" if bf16_supported else "float16"
    return SpeedSettings(
        device=device,
        amp_dtype=amp,
        channels_last=train.channels_last,
        cudnn_benchmark=train.cudnn_benchmark,
        non_blocking=train.non_blocking,
        device_data_max_mb=train.device_data_max_mb,
        loader_workers=train.loader_workers,
        pin_memory=train.pin_memory,
    )


class HostTensor:
    """A dataset tensor kept in (pinned) host memory that indexes like a device tensor:
    ``x[idx]`` gathers the rows on the host and copies them to ``device`` asynchronously."""

    def __init__(self, data: torch.Tensor, device, pin_memory: bool = True, non_blocking: bool = True):
        data = data.cpu()
        self.data = data.pin_memory() if pin_memory and torch.cuda.is_available() else data
        self.target = torch.device(device)
        self.pin_memory, self.non_blocking = pin_memory, non_blocking

    def __len__(self) -> int:
        return len(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return self.target

    def dim(self) -> int:
        return self.data.dim()

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu()
        rows = self.data[index]
        if self.pin_memory and torch.cuda.is_available():
            rows = rows.pin_memory()
        return rows.to(self.target, non_blocking=self.non_blocking)

    def subset(self, index: torch.Tensor) -> "HostTensor":
        """The rows ``index`` as another host-resident tensor (nothing copied to the device)."""
        return HostTensor(self.data[index.cpu()], self.target, self.pin_memory, self.non_blocking)

    def to(self, device, non_blocking: bool = False) -> torch.Tensor:
        """The whole tensor on ``device`` (for code that needs it all at once)."""
        return self.data.to(device, non_blocking=non_blocking)

    def cpu(self) -> torch.Tensor:
        return self.data


def loader_batches(x, y: torch.Tensor, batch_size: int, generator: torch.Generator, settings: SpeedSettings):
    """Endless shuffled ``(x, y)`` batches on ``settings.device`` from a DataLoader with worker
    processes and pinned memory (for host-resident datasets)."""
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    data = x.data if isinstance(x, HostTensor) else x.cpu()
    dataset = TensorDataset(data, y.cpu())
    loader = DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        sampler=RandomSampler(dataset, generator=generator),
        num_workers=settings.loader_workers,
        pin_memory=settings.pin_memory and settings.cuda,
        persistent_workers=settings.loader_workers > 0,
        drop_last=False,
    )
    target = torch.device(settings.device)
    while True:
        for xb, yb in loader:
            yield xb.to(target, non_blocking=settings.non_blocking), yb.to(target, non_blocking=settings.non_blocking)
