"""Search trials in the leaderboard: which trial each validator picks, and what that costs.

A search (tlbench.search) runs N trials per group (backbone, pair, strategy, loss, shots), each
at every seed. Per group and seed, a validator picks the trial it scores best; its *selected
accuracy* is that trial's target test accuracy, averaged over seeds. The *oracle* picks the trial
with the best target test accuracy (what no practitioner can do); *regret* = oracle - selected.
Kendall's tau between a validator's scores (oriented so that larger means better) and target
accuracy across a group's trials says how well it ranks them (mean over seeds). Ties follow
tlbench.utils.ranking (scores equal to 9 significant digits; the lowest trial index wins).

The main table shows, per group and seed, the trial picked by one validator (``--select``,
default ``source-val``); :func:`annotate` marks the records so every output format agrees.
"""

from __future__ import annotations

import math
from collections import defaultdict

from tlbench.plugin.errors import UserError
from tlbench.utils.ranking import mean, pick_index, proxy_ranking
from tlbench.settings.train import LAST_STEP

DEFAULT_SELECT = "source-val"
GROUP_FIELDS = ("source", "target", "backbone", "strategy", "loss", "shots")


def _checkpoint(r: dict) -> str:
    return r.get("model_selection") or (r.get("train") or {}).get("model_selection") or LAST_STEP


def group_of(r: dict) -> tuple:
    """A search group: the grid group, checkpoint rule and search (sampler, seed)."""
    trial = r.get("trial") or {}
    return tuple(str(r.get(k)) for k in GROUP_FIELDS) + (_checkpoint(r), trial.get("sampler"), trial.get("seed"))


def is_trial(r: dict) -> bool:
    return bool(r.get("trial"))


def validator_names(results: list[dict]) -> list[str]:
    """Validators with a score in any trial record, oracles last."""
    names = {n for r in results if is_trial(r) for n in (r.get("validator_scores") or {})}
    return sorted(names, key=lambda n: (_about(results, n).get("oracle", False), n))


def _about(results: list[dict], name: str) -> dict:
    for r in results:
        info = (r.get("validators") or {}).get(name)
        if info:
            return info
    return {}


def _oriented(r: dict, name: str, higher: bool) -> float | None:
    value = (r.get("validator_scores") or {}).get(name)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if higher else -float(value)


def _scored(trials: list[dict], name: str, higher: bool) -> list[tuple[dict, float]]:
    """(trial, oriented score) of the ok trials ``name`` scored, by trial index."""
    ok = sorted((r for r in trials if r.get("status") == "ok"), key=lambda r: r["trial"]["index"])
    return [(r, s) for r in ok if (s := _oriented(r, name, higher)) is not None]


def pick(trials: list[dict], name: str, higher: bool) -> dict | None:
    """The ok trial ``name`` scores best (ties: tlbench.utils.ranking, the lower trial index);
    None if none has a score."""
    scored = _scored(trials, name, higher)
    position = pick_index([s for _, s in scored])
    return None if position is None else scored[position][0]


def _by_group_and_seed(results: list[dict]) -> dict[tuple, dict[int, list[dict]]]:
    groups: dict[tuple, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if is_trial(r):
            groups[group_of(r)][r.get("seed")].append(r)
    return groups


def annotate(results: list[dict], select: str | None = None) -> list[dict]:
    """``results`` with each search-trial record marked ``selected`` (picked by ``select`` for its
    group and seed, or not) and ``selected_by``; records marked before and other records pass
    through. An unknown ``select`` is a UserError naming the validators the trials have."""
    trials = [r for r in results if is_trial(r) and "selected" not in r]
    if not trials:
        if select is not None and not any(is_trial(r) for r in results):
            raise UserError(f"--select {select} picks among search trials, but there are none; run with --search N")
        return results
    names = validator_names(trials)
    name = select or DEFAULT_SELECT
    if name not in names:
        raise UserError(f"--select {name!r}: no trial has a score of that validator; use one of {', '.join(names) or '(none)'}")
    higher = _about(trials, name).get("higher_is_better", True)
    chosen = set()
    for seeds in _by_group_and_seed(trials).values():
        for runs in seeds.values():
            best = pick(runs, name, higher)
            if best is not None:
                chosen.add(id(best))
    out = []
    for r in results:
        if is_trial(r) and "selected" not in r:
            r = {**r, "selected": id(r) in chosen, "selected_by": name,
                 "selected_by_oracle": bool(_about(trials, name).get("oracle"))}
        out.append(r)
    return out


def main_table_runs(results: list[dict], select: str | None = None) -> list[dict]:
    """The records the main table ranks: non-trial records, and each group's picked trials."""
    return [r for r in annotate(results, select) if r.get("selected", True)]


def caption_note(rows: list[dict]) -> str:
    """What the caption says about search trials in ``rows`` (empty without any)."""
    names = sorted({r["selected_by"] for r in rows if r.get("selected_by")})
    if not names:
        return ""
    oracle = any(r.get("selected_by_oracle") for r in rows)
    return (f" Search: per seed, the trial that {', '.join(names)} scores best"
            f"{' (an ORACLE: it reads target test labels)' if oracle else ''} (--select; see the selection table).")


def selection_rows(results: list[dict]) -> list[dict]:
    """Per search group: trial and seed counts, the defaults' accuracy (trial 0 when it ran the
    defaults), each validator's selected accuracy, regret and Kendall tau, and the oracle's pick."""
    trials = [r for r in results if is_trial(r)]
    names = validator_names(trials)
    direction = {n: _about(trials, n).get("higher_is_better", True) for n in names}
    rows = []
    for key, seeds in sorted(_by_group_and_seed(trials).items(), key=lambda kv: tuple(map(str, kv[0]))):
        row = dict(zip(GROUP_FIELDS + ("model_selection", "sampler", "search_seed"), key))
        ok = {seed: [r for r in runs if r.get("status") == "ok"] for seed, runs in seeds.items()}
        row["trials"] = max(len({r["trial"]["index"] for r in runs}) for runs in seeds.values())
        row["seeds"] = len(seeds)
        oracle = {s: max(r["target_acc"] for r in runs) for s, runs in ok.items() if runs}
        row["oracle_acc"] = mean(oracle.values())
        row["defaults_acc"] = mean(r["target_acc"] for runs in ok.values() for r in runs
                                   if r["trial"]["index"] == 0 and r["trial"].get("defaults"))
        row["validators"] = {}
        for name in names:
            ranked = [ranking for s, runs in ok.items() if (ranking := proxy_ranking(
                [(r["trial"]["index"], r["target_acc"], v) for r, v in _scored(runs, name, direction[name])],
                best=oracle.get(s))) is not None]
            row["validators"][name] = {"selected_acc": mean(x.picked for x in ranked), "regret": mean(x.regret for x in ranked),
                                       "kendall_tau": mean(x.kendall_tau for x in ranked),
                                       "oracle": bool(_about(trials, name).get("oracle"))}
        rows.append(row)
    return rows


def _honest(rows: list[dict]) -> list[str]:
    """The validators that are not oracles (an oracle's pick is the ``oracle`` column)."""
    return [n for n, v in rows[0]["validators"].items() if not v["oracle"]]


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _tau(v) -> str:
    return "-" if v is None else f"{v:+.2f}"


def selection_markdown(results: list[dict]) -> str:
    """The selection tables as Markdown (for results READMEs): selected accuracy (regret) per
    validator, then Kendall tau per validator."""
    rows = selection_rows(results)
    if not rows:
        return ""
    names = _honest(rows)
    label = str
    head = ["pair", "backbone", "strategy", "loss", "shots", "trials", "seeds", "defaults"]
    lines = ["| " + " | ".join(head + [label(n) for n in names] + ["oracle"]) + " |",
             "|" + "---|" * (len(head) + len(names) + 1)]
    taus = ["| " + " | ".join(head[:5] + [label(n) for n in names]) + " |", "|" + "---|" * (5 + len(names))]
    for row in rows:
        ids = [f"{row['source']} -> {row['target']}", row["backbone"], row["strategy"], row["loss"], str(row["shots"])]
        cells = [f"{_pct(row['validators'][n]['selected_acc'])} ({_pct(row['validators'][n]['regret'])})" for n in names]
        lines.append("| " + " | ".join(ids + [str(row["trials"]), str(row["seeds"]), _pct(row["defaults_acc"])]
                                       + cells + [_pct(row["oracle_acc"])]) + " |")
        taus.append("| " + " | ".join(ids + [_tau(row["validators"][n]["kendall_tau"]) for n in names]) + " |")
    return ("Selected target accuracy % (regret vs the oracle, points), mean over seeds:\n\n" + "\n".join(lines)
            + "\n\nKendall tau between each validator's score and target accuracy across trials (mean over seeds):\n\n"
            + "\n".join(taus) + "\n")


def render_selection(results: list[dict], console) -> None:
    """Print the selection tables (rich) when ``results`` hold search trials."""
    from rich.table import Table

    rows = selection_rows(results)
    if not rows:
        return
    names = _honest(rows)
    table = Table(title="search: target accuracy % of the trial each validator picks (regret vs oracle, pts) / Kendall tau",
                  title_justify="left", caption="Per seed each validator picks one trial; mean over seeds. ORACLE reads "
                  "target test labels: headroom, not a fair result. tau: rank agreement of score and accuracy over trials.",
                  caption_justify="left")
    for col in ("pair", "backbone", "strategy", "loss", "shots", "trials", "defaults"):
        table.add_column(col)
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("oracle", justify="right")
    for row in rows:
        cells = [f"{_pct(v['selected_acc'])} ({_pct(v['regret'])}) / {_tau(v['kendall_tau'])}"
                 for v in (row["validators"][n] for n in names)]
        table.add_row(f"{row['source']} -> {row['target']}", row["backbone"], row["strategy"], row["loss"], str(row["shots"]),
                      f"{row['trials']}x{row['seeds']}", _pct(row["defaults_acc"]), *cells, _pct(row["oracle_acc"]))
    console.print(table)
