"""The report's Tables 2 and 3 and its ensemble as one table: every detector and every ensemble mode.

    .venv/bin/python benchmarks/detector_comparison.py --data data --variants ae-oe,mobilenet-imagenet,gmm-mean \
        --models-dir /tmp/bench/models --result-dir /tmp/bench/results --cache-dir /tmp/bench/cache
    .venv/bin/python benchmarks/ensemble_table.py --data data --models-dir /tmp/bench/models \
        --result-dir /tmp/bench/results --cache-dir /tmp/bench/cache

Members are the detector folders ``<models-dir>/<machine>/<variant>`` written by
``detector_comparison.py`` (``--members`` maps kinds to variants); their test metrics are read
from ``<result-dir>/<variant>/``. Each ensemble mode is built with ``fit_ensemble`` and tested
with ``evaluate``, as ``cli.py fit --model ensemble`` and ``cli.py test --model ensemble`` do.
Prints official score per machine and detector, AUC source / target / pAUC (harmonic means over
sections), the label-free rule's figures, and checks the claim "the default ensemble is at least as
good as the best single detector on 6 of 7 types and never more than 0.02 below it".
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.data.layout import MACHINE_TYPES  # noqa: E402
from asdkeras.ensemble import fit_ensemble  # noqa: E402
from asdkeras.evaluate import evaluate  # noqa: E402
from asdkeras.metrics import hmean  # noqa: E402
from asdkeras.names import CACHE_DIR, metrics_path  # noqa: E402

MODES = {"battery": ("battery", "mean"), "pick": ("pick", "mean"), "paper": ("paper", "mean"),
         "fuse-mean": ("fuse", "mean"), "fuse-max": ("fuse", "max")}
"""Column name -> (ensemble mode, combination)."""


def figures_of(sections: dict, official: float) -> dict:
    return {"official": official,
            **{key: hmean([s[key] for s in sections.values()]) for key in ("auc_source", "auc_target", "pauc")}}


def member_figures(result_dir: str, variant: str, machine: str) -> dict:
    with open(metrics_path(os.path.join(result_dir, variant), variant, machine)) as handle:
        document = json.load(handle)
    return figures_of(document["sections"], document["official_score"])


def run_mode(column: str, machine: str, folders: dict, args) -> dict:
    mode, how = MODES[column]
    out = os.path.join(args.models_dir, machine, f"ensemble-{column}")
    detector = fit_ensemble(machine, mode=mode, how=how, kinds=tuple(folders), cache_dir=args.cache_dir,
                            data_dir=args.data, output_dir=out, folders=folders)
    evaluation = evaluate(out, machine, f"ensemble-{column}", args.data,
                          os.path.join(args.result_dir, f"ensemble-{column}"), args.cache_dir)
    sections = {r.section: {k: getattr(r, k) for k in ("auc_source", "auc_target", "pauc")} for r in evaluation.results}
    document = detector.info["ensemble"]
    return {**figures_of(sections, evaluation.official_score), "members": document["members"],
            "combine": document["combine"], "reason": document["reason"],
            "battery": {name: {"mean": c["mean"], "families": c["families"]}
                        for name, c in document.get("battery", {}).get("candidates", {}).items()},
            "false_alarm": {d: [getattr(r, f"false_alarm_{d}") for r in evaluation.results] for d in ("source", "target")},
            "recall": {d: [getattr(r, f"recall_{d}") for r in evaluation.results] for d in ("source", "target")}}


def tables(results: dict, columns: list[str], default: str, singles: list[str]) -> str:
    lines = ["| machine | " + " | ".join(columns) + f" | {default} chose |", "|---" * (len(columns) + 2) + "|"]
    for machine, row in results.items():
        best = max(row[c]["official"] for c in singles)
        cells = [f"**{row[c]['official']:.3f}**" if row[c]["official"] >= best - 1e-9 else f"{row[c]['official']:.3f}"
                 for c in columns]
        chose = row.get(default, row.get("pick", {}))
        lines.append(f"| {machine} | " + " | ".join(cells) + f" | {'+'.join(chose.get('members', []))}"
                     + (f" ({chose['combine']})" if chose.get("combine") else "") + " |")
    means = [sum(results[m][c]["official"] for m in results) / len(results) for c in columns]
    lines.append("| mean | " + " | ".join(f"{v:.3f}" for v in means) + " | |")
    oracle = sum(max(row[c]["official"] for c in singles) for row in results.values()) / len(results)
    lines += ["", f"per-type oracle (the best single detector, chosen with the test labels): mean {oracle:.3f}"]
    lines += ["", "AUC source / AUC target / pAUC (harmonic means over sections):", "",
              "| machine | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for machine, row in results.items():
        lines.append(f"| {machine} | " + " | ".join(
            f"{row[c]['auc_source']:.2f} / {row[c]['auc_target']:.2f} / {row[c]['pauc']:.2f}" for c in columns) + " |")
    lines += ["", f"Default ensemble ({default}): normal test clips flagged per domain (mean over sections, worst "
                  f"section in brackets) and recall of the worst section:", "",
              "| machine | false alarms source | false alarms target | lowest recall |", "|---|---|---|---|"]
    for machine, row in results.items():
        alarms = row[default]["false_alarm"]
        lines.append(f"| {machine} | " + " | ".join(f"{sum(alarms[d]) / len(alarms[d]):.0%} ({max(alarms[d]):.0%})"
                                                 for d in ("source", "target"))
                     + f" | {min(min(v) for v in row[default]['recall'].values()):.0%} |")
    wins, worst = 0, 0.0
    for row in results.values():
        gap = row[default]["official"] - max(row[c]["official"] for c in singles)
        wins += gap >= -1e-9
        worst = min(worst, gap)
    lines += ["", f"default ensemble ({default}) at least as good as the best single detector on {wins} of "
                  f"{len(results)} types; largest shortfall {-worst:.3f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--machines", default=",".join(MACHINE_TYPES))
    parser.add_argument("--members", default="ae=ae-oe,mobilenet=mobilenet-imagenet,gmm=gmm-battery",
                        help="kind=variant pairs: member folders <models-dir>/<machine>/<variant>.")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--default", default="battery", help="The column the CLI's default mode corresponds to.")
    parser.add_argument("--models-dir", default="saved_models/benchmark")
    parser.add_argument("--result-dir", default="results/benchmark")
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--out", default="results/benchmark/ensemble_table.json")
    args = parser.parse_args()
    members = dict(pair.split("=") for pair in args.members.split(","))
    modes = args.modes.split(",")
    results: dict = {}
    for machine in args.machines.split(","):
        folders = {kind: os.path.join(args.models_dir, machine, variant) for kind, variant in members.items()}
        row = {kind: member_figures(args.result_dir, variant, machine) for kind, variant in members.items()}
        for column in modes:
            row[column] = run_mode(column, machine, folders, args)
            print(f"{machine:9s} {column:10s} official {row[column]['official']:.3f} ({row[column]['reason']})", flush=True)
        results[machine] = row
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)
    print(tables(results, list(members) + modes, args.default, list(members)))


if __name__ == "__main__":
    main()
