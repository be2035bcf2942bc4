"""Every candidate of the ensemble's battery scored on the test clips, from saved scores: did its
label-free choice pick well, and would another rule have picked better?

    .venv/bin/python benchmarks/candidates_on_test.py --run data:saved_models:results \
        --run /tmp/seed81:/tmp/seed81/models:/tmp/seed81/results

Each ``--run`` is ``DATA:MODELS_DIR:RESULT_DIR`` of a run where ``fit --model all`` (or ``demo``) and
``test`` of every member were done (``DATA`` only names the run). For every machine type with an
ensemble it reads the battery's candidates from ``ensemble.json`` and the members' test scores
(``scores_<kind>_<machine>.csv``); a fusion's test scores are the members' scores standardised in
the units the ensemble fused them in (``figures[kind]["fusion"]``) and combined by their mean or
maximum, as the ensemble's graph computes them; no refitting. Rules compared, each judged by the
official score of what it picks among the eligible candidates: the battery's choice as shipped,
:func:`asdkeras.battery.choose` with ties within ``k`` of its recorded sampling errors (k = 2, the
shipped margin until session 15, down to 0: the battery's leader, ties within its fixed
:data:`~asdkeras.battery.TIE` aside), a variant that only lets a fusion give way to the best single
member, the shipped margin with the single members in another order (:data:`MEMBER_ORDERS`), and in
hindsight the best single member and the best candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asdkeras import battery, detectors  # noqa: E402
from asdkeras.ensemble_choice import eligible  # noqa: E402
from asdkeras.metrics import official_score, read_score_record, section_metrics  # noqa: E402
from asdkeras.names import ENSEMBLE_FILE, score_record_path  # noqa: E402
from asdkeras.scoring import combine_members  # noqa: E402

MACHINES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")
MARGINS = (2.0, 1.0, 0.5, 0.0)
"""Tie margins tried, in standard deviations of the battery's sampling error."""
MEMBER_ORDERS = {"registry order": detectors.model_kinds(),
                 "tie rank": tuple(detectors.by_tie_rank(detectors.model_kinds()))}
"""Orders of the single members that a battery tie goes by: the registry's (AE first, until session 22)
and the kinds' ``tie_rank`` (the GMM first, since)."""


def in_order(candidates: dict[str, dict], members: tuple[str, ...]) -> dict[str, dict]:
    """``candidates`` with the single members in the order ``members``, then the rest (the fusions) as recorded."""
    first = [n for n in members if n in candidates]
    return {n: candidates[n] for n in first + [n for n in candidates if n not in first]}


def pick(candidates: dict[str, dict], margin: float, members: tuple[str, ...] | None = None) -> str:
    """What :func:`asdkeras.battery.choose` picks among the eligible candidates with ties within ``margin``
    standard deviations (the shipped rule at :data:`~asdkeras.battery.NOISE_MARGIN`), the single
    members in the order ``members`` (default: as recorded)."""
    names, _ = eligible(in_order(candidates, members) if members else candidates)
    errors = {n: candidates[n]["lead_error"]["sd"] for n in names if candidates[n].get("lead_error")}
    shipped_margin = battery.NOISE_MARGIN
    try:
        battery.NOISE_MARGIN = margin
        return battery.choose({n: candidates[n] for n in names}, errors)[0]
    finally:
        battery.NOISE_MARGIN = shipped_margin


def official(records: list[dict], scores: np.ndarray) -> float:
    """The official score (harmonic mean over sections of AUC source, AUC target and pAUC) of ``scores``."""
    labels = np.array([r["label"] == "anomaly" for r in records], int)
    sections = np.array([r["section"] for r in records])
    domains = np.array([r["domain"] for r in records])
    return official_score([section_metrics(s, labels[sections == s], scores[sections == s], domains[sections == s])
                           for s in sorted(set(sections))])


def best_member_unless_outled(candidates: dict[str, dict], margin: float) -> str:
    """The battery's leader among the eligible candidates, except that a fusion leading the best single
    member by less than ``margin`` standard deviations of the battery's sampling error (and than the
    fixed :data:`~asdkeras.battery.TIE`) gives way to that member."""
    names, _ = eligible(candidates)
    leader = max(names, key=lambda n: candidates[n]["mean"])
    members = [n for n in names if len(candidates[n]["members"]) == 1]
    if len(candidates[leader]["members"]) == 1 or not members:
        return leader
    member = max(members, key=lambda n: candidates[n]["mean"])
    sd = (candidates[member].get("lead_error") or {}).get("sd", 0.0)
    lead = candidates[leader]["mean"] - candidates[member]["mean"]
    return member if lead < max(battery.TIE, margin * sd) else leader


def candidates_on_test(models_dir: str, result_dir: str, machine: str) -> dict | None:
    """Per battery candidate: its battery mean AUC and its official score on the test clips; which was shipped."""
    path = os.path.join(models_dir, machine, "ensemble", ENSEMBLE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        ensemble = json.load(handle)
    candidates = ensemble["battery"]["candidates"]
    members = {kind for c in candidates.values() for kind in c["members"]}
    records = {kind: read_score_record(score_record_path(result_dir, kind, machine)) for kind in members}
    paths = [r["path"] for r in records[next(iter(members))]]
    order = {kind: {r["path"]: i for i, r in enumerate(records[kind])} for kind in members}
    standard = {}
    for kind in members:
        fusion = ensemble["figures"][kind]["fusion"]
        raw = np.array([float(records[kind][order[kind][p]]["score"]) for p in paths])
        standard[kind] = (raw - fusion["mean"]) / max(fusion["std"], 1e-12)
    reference = [records[next(iter(members))][order[next(iter(members))][p]] for p in paths]
    rows = {}
    for name, candidate in candidates.items():
        parts = np.stack([standard[kind] for kind in candidate["members"]], axis=1)
        scores = combine_members(parts, candidate["combine"] or "mean")
        rows[name] = {"battery": candidate["mean"], "test": official(reference, scores), "members": candidate["members"],
                      "combine": candidate["combine"]}
    shipped = next(name for name, c in candidates.items()
                   if sorted(c["members"]) == sorted(ensemble["members"]) and (len(c["members"]) == 1
                                                                              or c["combine"] == ensemble["combine"]))
    return {"rows": rows, "shipped": shipped, "today": pick(candidates, battery.NOISE_MARGIN),
            "margins": {k: pick(candidates, k) for k in MARGINS},
            "member_first": {k: best_member_unless_outled(candidates, k) for k in MARGINS},
            "orders": {o: pick(candidates, battery.NOISE_MARGIN, members) for o, members in MEMBER_ORDERS.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="DATA:MODELS_DIR:RESULT_DIR (repeatable)")
    parser.add_argument("--machines", default=",".join(MACHINES))
    args = parser.parse_args()
    picked = {"shipped": [], **{f"ties within {k:g} sd": [] for k in MARGINS},
              **{f"member unless {k:g} sd": [] for k in MARGINS},
              **{f"{battery.NOISE_MARGIN:g} sd, {o}": [] for o in MEMBER_ORDERS},
              "best member": [], "best candidate": []}
    print(f"| run | machine | candidates: battery AUC -> test official | shipped | ties within {battery.NOISE_MARGIN:g} sd "
          f"(today's rule) | {' | '.join(MEMBER_ORDERS)} |")
    print("|---|---|---|---|---|" + "---|" * len(MEMBER_ORDERS))
    for run in args.run:
        name, models_dir, result_dir = run.split(":")
        for machine in args.machines.split(","):
            found = candidates_on_test(models_dir, result_dir, machine)
            if found is None:
                continue
            rows, shipped, today = found["rows"], found["shipped"], found["today"]
            cells = ", ".join(f"{n} {r['battery']:.3f} -> {r['test']:.3f}" for n, r in rows.items())
            print(f"| {name} | {machine} | {cells} | {shipped} {rows[shipped]['test']:.3f} | "
                  f"{today} {rows[today]['test']:.3f} | "
                  + " | ".join(f"{c} {rows[c]['test']:.3f}" for c in found["orders"].values()) + " |")
            picked["shipped"].append(rows[shipped]["test"])
            for k, chosen in found["margins"].items():
                picked[f"ties within {k:g} sd"].append(rows[chosen]["test"])
            for k, chosen in found["member_first"].items():
                picked[f"member unless {k:g} sd"].append(rows[chosen]["test"])
            for o, chosen in found["orders"].items():
                picked[f"{battery.NOISE_MARGIN:g} sd, {o}"].append(rows[chosen]["test"])
            picked["best member"].append(max(r["test"] for r in rows.values() if len(r["members"]) == 1))
            picked["best candidate"].append(max(r["test"] for r in rows.values()))
    print()
    for rule, values in picked.items():
        below = sum(v < b - 1e-9 for v, b in zip(values, picked["best member"]))
        print(f"{rule:20s} mean official {np.mean(values):.3f} over {len(values)} types x runs; "
              f"below the best member on {below}")


if __name__ == "__main__":
    main()
