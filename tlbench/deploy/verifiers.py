"""Second runtimes that re-check every exported model (``--verify-with NAME``, train key
``verify_with``): which exist, whether they are installed, and the command-line flag."""

from __future__ import annotations

import importlib.util

from tlbench.plugin.errors import UserError

# name -> (importable module that must be present, how to install it)
VERIFIERS = {"openvino": ("openvino", "pip install 'tlbench[openvino]'")}


def check_verify_with(value) -> str:
    """``value`` if it names an installed verifier ('' = none); a one-line UserError otherwise."""
    if value in ("", None):
        return ""
    if value not in VERIFIERS:
        raise UserError(f"verify_with = {value!r} is not a known runtime; choose one of {', '.join(VERIFIERS)} (or leave it empty)")
    module, install = VERIFIERS[value]
    if importlib.util.find_spec(module) is None:
        raise UserError(f"verify_with = {value!r} needs the {module} package, which is not installed; {install}")
    return value


def add_verify_argument(run_parser) -> None:
    """``tlbench run --verify-with openvino``."""
    run_parser.add_argument("--verify-with", metavar="RUNTIME", choices=sorted(VERIFIERS),
                            help="also check every exported fp32 and INT8 model in this runtime (optional extra): "
                                 + ", ".join(VERIFIERS))


def apply_verify_flag(args, config: dict) -> dict:
    """Put ``--verify-with`` into the run's ``[train]`` settings."""
    value = getattr(args, "verify_with", None)
    if value is not None:
        config.setdefault("train", {})["verify_with"] = value
    return config
