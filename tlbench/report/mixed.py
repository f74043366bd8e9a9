"""The leaderboard's one-line warning when the cells it compares were not produced alike: other
code revisions, other data for the same domain, other library versions (from each result's
``audit`` and ``versions``; results written before those were recorded are not counted)."""

from __future__ import annotations

LIBRARIES = ("tlbench", "torch", "torchvision", "onnxruntime", "onnxruntime-gpu")


def _revision(result: dict) -> str | None:
    code = (result.get("audit") or {}).get("code") or {}
    if not code.get("commit"):
        return None
    return code["commit"][:10] + ("+dirty" if code.get("dirty") else "")


def mixed_provenance(results: list[dict]) -> str | None:
    """What differs between the ``ok`` results, in one line, or None when nothing known does."""
    ok = [r for r in results if r.get("status") == "ok"]
    found = []
    revisions = sorted({v for v in map(_revision, ok) if v})
    if len(revisions) > 1:
        found.append(f"{len(revisions)} code revisions ({', '.join(revisions[:3])}{', ...' if len(revisions) > 3 else ''})")
    data: dict[tuple, set] = {}
    for r in ok:
        prints = (r.get("audit") or {}).get("data") or {}
        for split, value in prints.items():
            if value:
                domain = r["target"] if split.startswith("target") else r["source"]
                data.setdefault((domain, split.split("_", 1)[1]), set()).add(value)
    changed = sorted(f"{domain} {split}" for (domain, split), values in data.items() if len(values) > 1)
    if changed:
        found.append(f"different data for {', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}")
    for library in LIBRARIES:
        versions = sorted({(r.get("versions") or {}).get(library) for r in ok} - {None})
        if len(versions) > 1:
            found.append(f"{library} {' and '.join(versions)}")
    if not found:
        return None
    return ("the compared cells were not produced alike: " + "; ".join(found)
            + ": differences between them may come from that, not from the methods")
