"""Source-model cache: one state dict per (backbone, source, seed, settings), shared by a grid."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import torch

from tlbench.utils.atomic import atomic_write_bytes

CACHE_DIR = ".cache/sources"


def cache_path(results_dir, key: dict) -> Path:
    """Where the source model for ``key`` lives."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{key['backbone']}__{key['source'].replace(':', '-')}__seed{key['seed']}__{digest}.pt"
    return Path(results_dir) / CACHE_DIR / name


def save_state(path, state: dict) -> None:
    """Atomically save a state dict (tensors only)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path) -> dict | None:
    """A cached state dict, or None when missing or corrupt (never unpickles code)."""
    try:
        with warnings.catch_warnings():  # a hand-made pickle makes the safe unpickler warn before refusing it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:
        return None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    return state


def lock_path(path) -> Path:
    """The claim file that serialises training of the source model cached at ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".lock")
