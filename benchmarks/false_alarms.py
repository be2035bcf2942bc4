"""Decisions per domain from saved test metrics: normals flagged and anomalies caught, per type and detector.

    .venv/bin/python benchmarks/false_alarms.py --result-dir /tmp/bench22/results \
        --variants ae-oe,mobilenet-imagenet,mobilenet-imagenet-int8,gmm-battery,ensemble-battery

Reads ``<result-dir>/<variant>/metrics_<variant>_<machine>.json`` (what ``detector_comparison.py``
and ``ensemble_table.py`` write; an int8 twin's metrics sit beside its float detector's). Per
type and domain: the share of test normals flagged, as the mean over sections with the worst
section in brackets, and the lowest recall of any section. Then the issue's targets: at most
20 % per domain over a type's sections, never above 25 %, at most 40 % in one section's domain,
recall above 0 in every section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asdkeras.names import metrics_path  # noqa: E402

MACHINES = ("fan", "gearbox", "bearing", "slider", "valve", "ToyCar", "ToyTrain")


def read(result_dir: str, variant: str, machine: str) -> dict | None:
    base = variant[:-len("-int8")] if variant.endswith("-int8") else variant
    for folder in (variant, base):
        path = metrics_path(os.path.join(result_dir, folder), variant, machine)
        if os.path.exists(path):
            with open(path) as handle:
                return json.load(handle)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result-dir", required=True)
    parser.add_argument("--variants", required=True)
    parser.add_argument("--machines", default=",".join(MACHINES))
    args = parser.parse_args()
    print("| machine | detector | official | false alarms source | false alarms target | lowest recall |")
    print("|---|---|---|---|---|---|")
    misses: dict[str, list[str]] = {}
    for machine in args.machines.split(","):
        for variant in args.variants.split(","):
            document = read(args.result_dir, variant, machine)
            if document is None:
                continue
            sections = document["sections"].values()
            alarms = {d: [s[f"false_alarm_{d}"] for s in sections] for d in ("source", "target")}
            recall = min(min(s["recall_source"], s["recall_target"]) for s in sections)
            cells = [f"{sum(v) / len(v):.0%} ({max(v):.0%})" for v in alarms.values()]
            print(f"| {machine} | {variant} | {document['official_score']:.3f} | {cells[0]} | {cells[1]} | {recall:.0%} |")
            means = [sum(v) / len(v) for v in alarms.values()]
            failed = [f"{machine}: mean {max(means):.0%} > 20 %"] if max(means) > 0.20 + 1e-9 else []
            failed += [f"{machine}: a section at {max(map(max, alarms.values())):.0%} > 40 %"] \
                if max(map(max, alarms.values())) > 0.40 + 1e-9 else []
            failed += [f"{machine}: a section with recall 0"] if recall == 0 else []
            misses.setdefault(variant, []).extend(failed)
    print()
    for variant, failed in misses.items():
        print(f"{variant}: " + ("every target met" if not failed else "; ".join(failed)))


if __name__ == "__main__":
    main()
