"""Decisions per machine type: the table of a ``detector_comparison.py`` run with each threshold rule.

    .venv/bin/python benchmarks/decision_table.py --data /tmp/bench/small --models-dir /tmp/bench/models \
        --result-dir /tmp/bench/results --variants ae-oe,mobilenet-imagenet

For every machine and variant: official score and AUC source / target / pAUC (means over
sections), then per domain (means over sections) the
precision, recall, F1 and the share of normal test clips flagged (false alarms), for every
threshold rule the detector saved (``quantile``: 0.9 quantile of held-out normals, both domains
weighted equally; ``eq2``: the report's Eq. 2 for MobileNetV2). Scores are read back from the
official score CSVs that ``evaluate`` wrote, so no model runs here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from asdkeras.data.layout import scan_split, sections, select  # noqa: E402
from asdkeras.metrics import read_score_csv, section_metrics  # noqa: E402
from asdkeras.names import DETECTOR_FILE, metrics_path, official_score_csv  # noqa: E402


def domain_figures(records, scores: dict, threshold: float) -> dict:
    """Precision, recall, F1 and false-alarm share per domain (as ``test`` computes them), averaged over sections."""
    results = []
    for section in sections(records):
        members = select(records, section=section)
        values = np.array([scores[r.filename] for r in members])
        results.append(section_metrics(section, [r.is_anomaly for r in members], values,
                                       [r.domain for r in members], (values > threshold).astype(int)))
    return {domain: {k: float(np.mean([getattr(r, f"{k}_{domain}") for r in results]))
                     for k in ("precision", "recall", "f1", "false_alarm")} for domain in ("source", "target")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--result-dir", required=True)
    parser.add_argument("--variants", default="ae-oe,mobilenet-imagenet")
    parser.add_argument("--out", default=None, help="Write the figures as JSON here too.")
    args = parser.parse_args()
    rows, figures = [], {}
    header = ("| machine | detector | rule | official | AUC src | AUC tgt | pAUC | P src | R src | F1 src | FA src "
              "| P tgt | R tgt | F1 tgt | FA tgt |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for machine in sorted(os.listdir(args.models_dir)):
        records = scan_split(args.data, machine, "test")
        for variant in args.variants.split(","):
            folder = os.path.join(args.models_dir, machine, variant)
            if not os.path.isfile(os.path.join(folder, DETECTOR_FILE)):
                continue
            detector = json.load(open(os.path.join(folder, DETECTOR_FILE)))
            results = os.path.join(args.result_dir, variant)
            scores = {}
            for section in sections(records):
                scores.update(read_score_csv(official_score_csv(results, machine, section)))
            metrics = json.load(open(metrics_path(results, variant, machine)))
            aucs = " | ".join(f"{np.mean([v[k] for v in metrics['sections'].values()]):.2f}"
                              for k in ("auc_source", "auc_target", "pauc"))
            for rule, record in detector["thresholds"].items():
                d = domain_figures(records, scores, record["value"])
                figures.setdefault(machine, {}).setdefault(variant, {})[rule] = d
                deciding = rule == detector["threshold_rule"]
                ranking = f"{metrics['official_score']:.3f} | {aucs}" if deciding else " | | | "
                rows.append(f"| {machine} | {variant} | {rule}{'' if deciding else ' (saved, not deciding)'} | {ranking} | "
                            + " | ".join(f"{d[dom][k]:.2f}" for dom in ("source", "target")
                                         for k in ("precision", "recall", "f1", "false_alarm")) + " |")
    print(header)
    print("\n".join(rows))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
