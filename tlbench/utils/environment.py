"""Versions and device facts recorded with every result."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("tlbench", "torch", "torchvision", "onnx", "onnxruntime-gpu", "onnxruntime", "pluggy", "rich")


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def resolve_device(requested: str | None) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; explicit CUDA without a GPU is an error."""
    import torch

    from tlbench.plugin.errors import UserError

    requested = (requested or "auto").strip()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {requested!r} asked for, but torch sees no GPU; use --device cpu or auto")
        try:
            index = torch.device(requested).index or 0
        except RuntimeError:
            raise UserError(f"device {requested!r} is not a device name; use cpu, cuda, cuda:N or auto") from None
        if index >= torch.cuda.device_count():
            raise UserError(f"device {requested!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
        return requested
    raise UserError(f"device {requested!r} is not a device name; use cpu, cuda, cuda:N or auto")


def device_name(device: str) -> str:
    """Human-readable name of the device a run used."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()
