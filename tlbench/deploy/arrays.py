"""Reading an untrusted ``.npy`` file: its header is checked against the file before any memory is
allocated for the array.

A header is a few bytes that may claim any shape: ``(10**11,)`` float32 asks numpy for 373 GiB
(MemoryError) while the file holds a few bytes. The values an array declares (shape x item size)
must be in the file; object arrays (pickles) and ``.npz`` archives are refused by name.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from tlbench.plugin.errors import UserError, first_line

ZIP_MAGIC = b"PK\x03\x04"  # an .npz archive is a zip file
NPZ_HINT = "an .npz archive (several named arrays); give one .npy array, e.g. np.save('x.npy', np.load('a.npz')['arr_0'])"


def _header(handle, shown: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) the header declares; the handle is left at the start of the data."""
    if handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
        raise UserError(f"{shown!r} is {NPZ_HINT}")
    handle.seek(0)
    try:
        version = npy_format.read_magic(handle)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read(handle)  # numpy refuses a header over 10,000 bytes
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise UserError(f"{shown!r} is not a readable .npy array: {first_line(exc, 120, typed=False)}") from None
    return tuple(shape), dtype


def load_npy(path) -> np.ndarray:
    """The array stored at ``path``; a one-line UserError for anything but a plain, complete
    ``.npy`` file of numbers or strings (never unpickled)."""
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            shape, dtype = _header(handle, shown)
            if dtype.hasobject:
                raise UserError(f"{shown!r} is not a readable .npy array: it holds Python objects (a pickle); "
                                "give an array of numbers")
            declared = math.prod(shape) * dtype.itemsize
            present = Path(path).stat().st_size - handle.tell()
            if declared > present:
                raise UserError(f"{shown!r} is not a readable .npy array: its header declares shape {shape} of {dtype} "
                                f"({declared:,} bytes) but the file holds {max(present, 0):,} bytes of data; it is "
                                "truncated or forged")
            handle.seek(0)
            return npy_format.read_array(handle, allow_pickle=False)
    except (OSError, ValueError, MemoryError) as exc:
        raise UserError(f"{shown!r} is not a readable .npy array: {first_line(exc, 120)}") from None
