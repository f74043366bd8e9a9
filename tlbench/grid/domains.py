"""What a grid's ``source`` / ``target`` strings name, and which kind of transfer a pair is.

    digits:mnist            a dataset's domain, all its classes
    digits:mnist[0-4]       the same domain restricted to a class subset: items are class names
    digits:uci[5,7,9]       or class indices, ``a-b`` an inclusive index range; labels are
    imagefolder:a[cat,dog]  renumbered 0..k-1 in the order given
    pretrained              (source only) the backbone's own pretrained weights: no source data
    digits:mnist+synthdigits:color
                            (source only) several domains trained on as one labeled source; the
                            set is what counts, so it is written sorted (``canonical_source``)

Two domains share a label space when their datasets do (the same dataset, or datasets declaring
the same ``label_space`` and classes) and their effective classes are the same names in the same
order. A pair that shares it is domain adaptation (the same task elsewhere); one that does not is
task transfer (new classes); a pretrained source is its own kind. Domain generalisation is domain
adaptation with the target's training inputs withheld (``train.target_inputs = "withheld"``) and
no target labels: the target is seen only when the model is tested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tlbench.plugin.errors import UserError

PRETRAINED = "pretrained"
DOMAIN_ADAPTATION, TASK_TRANSFER, PRETRAINED_KIND = "domain-adaptation", "task-transfer", "pretrained"
DOMAIN_GENERALISATION = "domain-generalisation"
SOURCE_JOIN = "+"  # joins the domains of a multi-source cell
_JOIN = re.compile(r"\+\s*(?=[^:+\[\]]*:)|\+\s*$")  # a "+" before the next DATASET: (or at the end)
_INDEX = re.compile(r"[0-9]+")  # a class index (fullmatch): ASCII digits only
_PATTERN = re.compile(r"^(?P<dataset>[^:\[\]]+):(?P<domain>[^:\[\]]+)(\[(?P<subset>[^\[\]]*)\])?$")


@dataclass(frozen=True)
class DomainRef:
    """A parsed ``DATASET:DOMAIN[SUBSET]``; ``subset`` is the raw text inside the brackets."""

    dataset: str
    domain: str
    subset: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.dataset}:{self.domain}"


def is_pretrained(value: str) -> bool:
    """Is this source the backbone's own pretrained weights rather than a dataset domain?"""
    return value == PRETRAINED


def parse_domain(value, role: str = "domain") -> DomainRef:
    """``"digits:mnist[0-4]"`` -> DomainRef; anything else is a one-line UserError."""
    match = _PATTERN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        extra = " or `pretrained`" if role == "source" else ""
        raise UserError(f"{role} {value!r} must be DATASET:DOMAIN (e.g. digits:mnist), optionally with a class "
                        f"subset like digits:mnist[0-4]{extra}")
    subset = match.group("subset")
    if subset is not None and not subset.strip():
        raise UserError(f"{role} {value!r} has an empty class subset; list classes like [0-4] or [cat,dog]")
    return DomainRef(match.group("dataset").strip(), match.group("domain").strip(), None if subset is None else subset.strip())


def source_parts(value: str) -> list[str]:
    """The domain strings of a source, in the order written (one for a single source). A ``+``
    joins two domains only where a ``DATASET:`` follows it, so domain names may hold one
    (``coloredmnist:+90%+coloredmnist:-90%`` is two domains)."""
    if not isinstance(value, str):
        return [value]
    return [part.strip() for part in _JOIN.split(value)]


def canonical_source(value) -> str:
    """A source string with its domains sorted (``b+a`` and ``a+b`` are one cell); a part that is
    empty, malformed, repeated or ``pretrained`` is a one-line UserError."""
    parts = source_parts(value)
    if len(parts) == 1:
        return value.strip() if isinstance(value, str) else value
    for part in parts:
        if not part:
            raise UserError(f"source {value!r} has an empty part; join domains like digits:mnist+synthdigits:color")
        if is_pretrained(part):
            raise UserError(f"source {value!r}: `pretrained` cannot be joined with domains; give it alone")
        parse_domain(part, "source")
    if len(set(parts)) != len(parts):
        raise UserError(f"source {value!r} names a domain twice")
    return SOURCE_JOIN.join(sorted(parts))


def dataset_name(value: str) -> str | None:
    """The dataset a source/target string uses (None for a pretrained source; a multi-source
    string's first dataset: see :func:`dataset_names`)."""
    return None if is_pretrained(value) else parse_domain(source_parts(value)[0]).dataset


def dataset_names(value: str) -> list[str]:
    """Every dataset a source/target string uses, once each, in order (none for pretrained)."""
    if is_pretrained(value):
        return []
    return list(dict.fromkeys(parse_domain(part).dataset for part in source_parts(value)))


def resolve_subset(ref: DomainRef, classes: tuple[str, ...], role: str = "domain") -> tuple[int, ...] | None:
    """Indices into ``classes`` that ``ref``'s subset selects, in the order given (None: all)."""
    if ref.subset is None:
        return None
    chosen: list[int] = []
    for item in (part.strip() for part in ref.subset.split(",")):
        if item in classes:
            chosen.append(classes.index(item))
            continue
        bounds = [b.strip() for b in item.split("-")]
        if not item.isascii() and any(c.isdigit() for c in item):  # "١", "²": str.isdigit() says yes, int() may not
            raise UserError(f"{role} {ref.qualified}[{ref.subset}]: {item!r} is not a class name and uses non-ASCII digits; "
                            "write class indices with 0-9, e.g. [0-4] or [1,2]")
        if _INDEX.fullmatch(item) or (len(bounds) == 2 and all(_INDEX.fullmatch(b) for b in bounds)):
            low, high = (int(item), int(item)) if _INDEX.fullmatch(item) else (int(bounds[0]), int(bounds[1]))
            if low > high or high >= len(classes):
                raise UserError(f"{role} {ref.qualified}[{ref.subset}]: class range {item!r} is outside 0-{len(classes) - 1}")
            chosen.extend(range(low, high + 1))
            continue
        shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
        raise UserError(f"{role} {ref.qualified}[{ref.subset}]: {item!r} is neither a class ({shown}) nor an index range like 0-4")
    if len(set(chosen)) != len(chosen):
        raise UserError(f"{role} {ref.qualified}[{ref.subset}] names a class twice")
    if len(chosen) < 2:
        raise UserError(f"{role} {ref.qualified}[{ref.subset}] keeps {len(chosen)} class; a task needs at least 2")
    return tuple(chosen)


def safe_name(value: str) -> str:
    """A source/target string as a directory-name part: ``digits:mnist[0-4]`` -> ``digits-mnist_0-4``
    (``+`` between the domains of a multi-source string stays)."""
    return value.replace(":", "-").replace("/", "-").replace("[", "_").replace("]", "").replace(",", ".")
