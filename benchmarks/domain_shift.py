"""Do fresh target-domain normals score like fresh source-domain normals? From a saved run.

A detector judged per operating condition scores a new normal clip in units of its condition's
normal spread, so fresh normals of both domains should score alike, around the new-normal mean
and spread its threshold was fitted for (``thresholds.quantile.new_normal`` in ``detector.json``,
where the detector records it). Target conditions are estimated from a handful of training clips
(DCASE: 10 a section); where fresh target normals score systematically above source ones, that
estimate is too narrow and the target domain gets the false alarms.

    .venv/bin/python benchmarks/domain_shift.py --models-dir seed151/models --result-dir seed151/results
    .venv/bin/python benchmarks/domain_shift.py --models-dir saved_models --result-dir results --kind ensemble

Prints per machine type: the threshold, the expected new-normal mean and standard deviation,
and per domain the mean and standard deviation of the test normals' scores and the share
flagged. Reads ``<models-dir>/<type>/<kind>/detector.json`` and the ``scores_<kind>_<type>.csv``
that ``test`` and ``demo`` write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from asdkeras.data.layout import MACHINE_TYPES  # noqa: E402
from asdkeras.metrics import read_score_record  # noqa: E402
from asdkeras.names import DETECTOR_FILE, detector_dir, score_record_path  # noqa: E402

DOMAINS = ("source", "target")


def domain_figures(models_dir: str, result_dir: str, kind: str, machine: str) -> dict | None:
    """Threshold, expected new-normal (mean, sd) and per domain (mean, sd, share flagged) of the
    test normals' scores; None where the run has no such detector or scores."""
    detector_file = os.path.join(detector_dir(models_dir, machine, kind), DETECTOR_FILE)
    scores_file = score_record_path(result_dir, kind, machine)
    if not (os.path.isfile(detector_file) and os.path.isfile(scores_file)):
        return None
    with open(detector_file) as handle:  # the JSON alone: asdkeras.detector would load TensorFlow
        detector = json.load(handle)
    threshold = detector["threshold"]
    expected = detector.get("thresholds", {}).get("quantile", {}).get("new_normal")
    normals = [r for r in read_score_record(scores_file) if r["label"] == "normal"]
    figures = {"threshold": threshold,
               "expected": (expected["mean"], expected["std"]) if expected else None}
    for domain in DOMAINS:
        scores = np.array([r["score"] for r in normals if r["domain"] == domain], float)
        figures[domain] = ((scores.mean(), scores.std(ddof=1), float(np.mean(scores > threshold)))
                           if len(scores) > 1 else None)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--result-dir", required=True)
    parser.add_argument("--kind", default="gmm", help="detector kind or ensemble [default: gmm]")
    parser.add_argument("--machines", default=",".join(MACHINE_TYPES))
    args = parser.parse_args()
    print(f"{args.kind}: test normals' scores per domain (mean / standard deviation, share flagged)")
    print("| machine | threshold | expected new normal | source normals | target normals | target - source mean |")
    print("|---|---|---|---|---|---|")
    for machine in args.machines.split(","):
        f = domain_figures(args.models_dir, args.result_dir, args.kind, machine)
        if f is None or f["source"] is None or f["target"] is None:
            continue
        expected = "n/a" if f["expected"] is None else f"{f['expected'][0]:.2f} / {f['expected'][1]:.2f}"
        cells = [f"{f[d][0]:.2f} / {f[d][1]:.2f} ({f[d][2]:.0%})" for d in DOMAINS]
        print(f"| {machine} | {f['threshold']:.2f} | {expected} | {cells[0]} | {cells[1]} | "
              f"{f['target'][0] - f['source'][0]:+.2f} |")


if __name__ == "__main__":
    main()
