"""Decisions per domain from saved test metrics: normals flagged and anomalies caught, per type and detector.

    .venv/bin/python benchmarks/false_alarms.py --result-dir /tmp/bench22/results \
        --variants ae-oe,mobilenet-imagenet,mobilenet-imagenet-int8,gmm-battery,ensemble-battery
    .venv/bin/python benchmarks/false_alarms.py --result-dir /tmp/seed0/results --result-dir /tmp/seed81/results \
        --variants ae,mobilenet,gmm,ensemble          # several seeds: each seed's table, then the summary

Reads ``<result-dir>/<variant>/metrics_<variant>_<machine>.json`` (what ``detector_comparison.py``
and ``ensemble_table.py`` write; an int8 twin's metrics sit beside its float detector's) or, as
``test`` and ``demo`` write them, ``<result-dir>/metrics_<variant>_<machine>.json``. Per type and
domain: the share of test normals flagged, as the mean over sections with the worst section in
brackets, and the lowest recall of any section. Then issue 17's targets: at most 20 % per domain
over a type's sections (with several result folders: the mean over them), never above 25 % for any
type and domain, at most 40 % in one section's domain, recall above 0 in every section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asdkeras.names import metrics_path  # noqa: E402

MACHINES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")
DOMAINS = ("source", "target")
MEAN_TARGET, TYPE_CAP, SECTION_CAP = 0.20, 0.25, 0.40


def read(result_dir: str, variant: str, machine: str) -> dict | None:
    base = variant[:-len("-int8")] if variant.endswith("-int8") else variant
    for folder in (variant, base, ""):
        path = metrics_path(os.path.join(result_dir, folder), variant, machine)
        if os.path.exists(path):
            with open(path) as handle:
                return json.load(handle)
    return None


def decisions(document: dict) -> dict:
    """Per domain: the sections' shares of normals flagged; the lowest recall of any section and domain."""
    sections = document["sections"].values()
    return {"alarms": {d: [s[f"false_alarm_{d}"] for s in sections] for d in DOMAINS},
            "recalls": {d: [s[f"recall_{d}"] for s in sections] for d in DOMAINS},
            "recall": min(min(s["recall_source"], s["recall_target"]) for s in sections),
            "official": document["official_score"]}


def misses(machine: str, runs: list[dict]) -> list[str]:
    """Issue 17's targets for one type and detector over ``runs`` (one :func:`decisions` per result folder)."""
    failed = []
    for domain in DOMAINS:
        means = [sum(r["alarms"][domain]) / len(r["alarms"][domain]) for r in runs]
        if sum(means) / len(means) > MEAN_TARGET + 1e-9:
            failed.append(f"{machine} {domain}: mean {sum(means) / len(means):.0%} > {MEAN_TARGET:.0%}")
        if max(means) > TYPE_CAP + 1e-9:
            failed.append(f"{machine} {domain}: {max(means):.0%} > {TYPE_CAP:.0%} in a run")
    worst = max(max(r["alarms"][d]) for r in runs for d in DOMAINS)
    failed += [f"{machine}: a section at {worst:.0%} > {SECTION_CAP:.0%}"] if worst > SECTION_CAP + 1e-9 else []
    failed += [f"{machine}: a section with recall 0"] if min(r["recall"] for r in runs) == 0 else []
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result-dir", required=True, action="append",
                        help="a folder of saved metrics; give it once per seed for the summary over seeds")
    parser.add_argument("--variants", required=True)
    parser.add_argument("--machines", default=",".join(MACHINES))
    args = parser.parse_args()
    runs: dict[tuple[str, str], list[dict]] = {}
    several = len(args.result_dir) > 1
    print(f"| {'run | ' if several else ''}machine | detector | official | false alarms source | false alarms target "
          f"| lowest recall |")
    print(f"|{'---|' if several else ''}---|---|---|---|---|---|")
    for result_dir in args.result_dir:
        for machine in args.machines.split(","):
            for variant in args.variants.split(","):
                document = read(result_dir, variant, machine)
                if document is None:
                    continue
                run = decisions(document)
                runs.setdefault((variant, machine), []).append(run)
                cells = [f"{sum(v) / len(v):.0%} ({max(v):.0%})" for v in run["alarms"].values()]
                print(f"| {result_dir + ' | ' if several else ''}{machine} | {variant} | {run['official']:.3f} | "
                      f"{cells[0]} | {cells[1]} | {run['recall']:.0%} |")
    if several:
        print(f"\nOver the {len(args.result_dir)} runs: official score, normals flagged per domain (mean over runs "
              f"and sections; the worst run's mean; the worst section), lowest recall of any section\n")
        print("| machine | detector | official | false alarms source | false alarms target | lowest recall |")
        print("|---|---|---|---|---|---|")
        for (variant, machine), found in runs.items():
            cells = []
            for domain in DOMAINS:
                means = [sum(r["alarms"][domain]) / len(r["alarms"][domain]) for r in found]
                cells.append(f"{sum(means) / len(means):.0%} ({max(means):.0%}; "
                             f"{max(max(r['alarms'][domain]) for r in found):.0%})")
            print(f"| {machine} | {variant} | {sum(r['official'] for r in found) / len(found):.3f} | {cells[0]} | "
                  f"{cells[1]} | {min(r['recall'] for r in found):.0%} |")
    print()
    for variant in args.variants.split(","):
        failed = [miss for (v, machine), found in runs.items() if v == variant for miss in misses(machine, found)]
        if any(v == variant for v, _ in runs):
            print(f"{variant}: " + ("every target met" if not failed else "; ".join(failed)))
    print("\nOver every type and run: mean share of normals flagged and of anomalies caught, per domain; "
          "type-runs above the 25 % cap and sections above 40 %\n")
    for variant in args.variants.split(","):
        found = [r for (v, _), rs in runs.items() if v == variant for r in rs]
        if found:
            print(f"{variant}: " + overall(found))


def overall(runs: list[dict]) -> str:
    """One line over type-runs (:func:`decisions`): mean flagged and caught per domain, and the cap misses."""
    def mean(key: str, domain: str) -> float:
        return float(np.mean([v for r in runs for v in r[key][domain]]))

    over_type = sum(np.mean(r["alarms"][d]) > TYPE_CAP + 1e-9 for r in runs for d in DOMAINS)
    over_section = sum(v > SECTION_CAP + 1e-9 for r in runs for d in DOMAINS for v in r["alarms"][d])
    return (f"flagged source {mean('alarms', 'source'):.1%}, target {mean('alarms', 'target'):.1%}; "
            f"recall source {mean('recalls', 'source'):.1%}, target {mean('recalls', 'target'):.1%}; "
            f"official {np.mean([r['official'] for r in runs]):.3f}; {over_type} type-domains > 25 %, "
            f"{over_section} sections > 40 % ({len(runs)} type-runs)")


if __name__ == "__main__":
    main()
