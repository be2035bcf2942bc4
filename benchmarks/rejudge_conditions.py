"""Re-judge saved networks' operating conditions with this checkout's rules, without refitting them.

    .venv/bin/python benchmarks/rejudge_conditions.py --models-dir /tmp/bench51/models \
        --machines valve,ToyTrain --variants ae-oe,mobilenet-imagenet [--threshold-confidence 0.75]

A change to how scores are judged per condition (:mod:`asdkeras.models.conditions`) or to the
threshold moves the false alarms; refitting the networks to measure it would also move them by
TensorFlow's run-to-run variation. This keeps each saved network (and its int8 twin), recomputes
its conditions and quantile threshold from the same training normals and held-out split
(:func:`asdkeras.fit.judge_per_condition`) and rewrites the detector folder atomically in place,
its other documents kept (MobileNetV2's ``eq2`` threshold as saved: it rests on the source
conditions' statistics, which the rules here leave alone); the kind's ``calibrate`` with no clip
added. ``--threshold-confidence`` re-judges with a tolerance threshold
(:func:`asdkeras.models.condition_statistics.prediction_scale`) and records it in the detector's
``config.json``. Copy the models folder first to keep the old detectors. Given ``--data``, each is
tested again into ``<result-dir>/<variant>/`` (and its twin), as ``detector_comparison.py`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras import detectors  # noqa: E402
from asdkeras.detector import read_detector_json  # noqa: E402
from asdkeras.evaluate import evaluate_with_variants  # noqa: E402
from asdkeras.fit import load_config  # noqa: E402


def first_view_stats(info: dict) -> dict:
    """Per condition, the score statistics of a detector's (first) view: an AE of several views
    (``mean+peak``) records a list of conditions, one per view."""
    conditions = info["conditions"]
    return (conditions[0] if isinstance(conditions, list) else conditions)["score_stats"]


def rejudge(folder: str, confidence: float | None = None) -> dict:
    """Rewrite ``folder``'s detector (and variants) with recomputed conditions, as ``calibrate`` does
    with no clip added (:func:`asdkeras.calibration.judge_network_again`); returns, per group of the
    float detector (its first view), its old (mean, std) and its new record."""
    kind = read_detector_json(folder)["kind"]
    before = first_view_stats(read_detector_json(folder))
    config = replace(load_config(folder, kind), threshold_confidence=confidence)
    new = detectors.get(kind).calibrate(folder, config)
    return {g: ((before[g]["mean"], before[g]["std"]), record) for g, record in first_view_stats(new.info).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--machines", required=True)
    parser.add_argument("--variants", default="ae-oe,mobilenet-imagenet")
    parser.add_argument("--data", help="dataset to test the re-judged detectors on (none: not tested)")
    parser.add_argument("--result-dir")
    parser.add_argument("--cache-dir")
    parser.add_argument("--threshold-confidence", type=float,
                        help="re-judge with a tolerance threshold at this confidence (none: the prediction rule)")
    args = parser.parse_args()
    if args.data and not (args.result_dir and args.cache_dir):
        parser.error("--data needs --result-dir and --cache-dir (where the test results and features go)")
    for machine in args.machines.split(","):
        for variant in args.variants.split(","):
            folder = os.path.join(args.models_dir, machine, variant)
            for group, (old, new) in rejudge(folder, args.threshold_confidence).items():
                print(f"{machine:9s} {variant:20s} {group:10s} mean {old[0]:.4g} -> {new['mean']:.4g}  "
                      f"std {old[1]:.4g} -> {new['std']:.4g}  {new['rule'].split('; ')[-2:]}", flush=True)
            if args.data:
                evaluate_with_variants(folder, machine, variant, args.data, os.path.join(args.result_dir, variant),
                                       args.cache_dir)


if __name__ == "__main__":
    main()
