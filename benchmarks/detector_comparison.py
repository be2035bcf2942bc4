"""Official DCASE score per machine type for several detector variants on one dataset.

    .venv/bin/python benchmarks/detector_comparison.py --data data --variants ae-clear,ae-oe --epochs 20

Variants: ``ae-clear`` (plain AE, normals only), ``ae-oe`` (report's Eq. 1, the report's
outlier pairing), ``ae-oe-hinge`` (hinge variant), ``mobilenet-imagenet`` and
``mobilenet-scratch`` (MobileNetV2 with ImageNet weights or from a random initialisation, width
``--width``), ``gmm-battery`` / ``gmm-fuse`` / ``gmm-paper`` / ``gmm-mean`` / ``gmm-max`` (pooled GMM
with the default score-level fusion of a steady and a transient view chosen by the battery, the
mean and r = 0.5 side by side in one vector, TWFR-GMM's per-type settings, r = 1, r = 0). Each is trained with ``fit_autoencoder`` / ``fit_mobilenet`` and tested with
``evaluate``, exactly as ``cli.py fit`` / ``cli.py test`` do. Writes a JSON of
all numbers and prints a Markdown table (official score; per-section AUC source/target; fit seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.data.layout import MACHINE_TYPES  # noqa: E402
from asdkeras.evaluate import evaluate_with_variants  # noqa: E402
from asdkeras.fit import fit_detector, make_config  # noqa: E402
from asdkeras.names import CACHE_DIR  # noqa: E402

VARIANTS = {
    "ae-clear": ("ae", dict(loss="mse", outlier="none")),
    "ae-oe": ("ae", dict(loss="oe", outlier="auto")),
    "ae-oe-hinge": ("ae", dict(loss="oe-hinge", outlier="auto")),
    "mobilenet-imagenet": ("mobilenet", dict(weights="imagenet")),
    "mobilenet-scratch": ("mobilenet", dict(weights="none")),
    "gmm-battery": ("gmm", dict(pooling_decay="battery")),
    "gmm-fuse": ("gmm", dict(pooling_decay="fuse")),
    "gmm-paper": ("gmm", dict(pooling_decay="paper")),
    "gmm-mean": ("gmm", dict(pooling_decay=1.0)),
    "gmm-max": ("gmm", dict(pooling_decay=0.0)),
}
"""Variant name -> (model kind, its options)."""

SECTION_FIGURES = ("auc_source", "auc_target", "pauc", "precision_source", "recall_source", "f1_source",
                   "false_alarm_source", "precision_target", "recall_target", "f1_target", "false_alarm_target")


def run_variant(name: str, machine: str, args) -> dict:
    folder = os.path.join(args.models_dir, machine, name)
    kind, options = VARIANTS[name]
    sizes = {"ae": dict(epochs=args.epochs), "mobilenet": dict(width=args.width, image_size=args.image_size),
             "gmm": {}}[kind]
    config = make_config(kind, machine=machine, seed=args.seed, data_dir=args.data, cache_dir=args.cache_dir,
                         output_dir=folder, **sizes, **options)
    detector = fit_detector(kind, config)
    evaluation, *twin = evaluate_with_variants(folder, machine, name, args.data, os.path.join(args.result_dir, name),
                                               args.cache_dir)
    return {"official_score": evaluation.official_score, "fit_seconds": detector.info["fit_seconds"],
            "int8_twin_official_score": twin[0].official_score if twin else None,
            "epochs_run": detector.info["epochs_run"], "outlier": detector.info["outlier"],
            "thresholds": {rule: {k: v for k, v in record.items() if k in ("value", "rule", "flagged_share")}
                           for rule, record in detector.thresholds.items()},
            "sections": {r.section: {k: getattr(r, k) for k in SECTION_FIGURES} for r in evaluation.results}}


def markdown(results: dict, variants: list[str]) -> str:
    lines = ["| machine | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    for machine, by_variant in results.items():
        cells = []
        for v in variants:
            r = by_variant[v]
            aucs = " ".join(f"{s['auc_source']:.2f}/{s['auc_target']:.2f}" for s in r["sections"].values())
            cells.append(f"**{r['official_score']:.3f}** ({aucs}; {r['fit_seconds']:.0f} s)")
        lines.append(f"| {machine} | " + " | ".join(cells) + " |")
    means = [sum(results[m][v]["official_score"] for m in results) / len(results) for v in variants]
    lines.append("| mean | " + " | ".join(f"**{m:.3f}**" for m in means) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--machines", default=",".join(MACHINE_TYPES))
    parser.add_argument("--variants", default="ae-clear,ae-oe")
    parser.add_argument("--epochs", type=int, default=20, help="AE maximum epochs (MobileNetV2 keeps its defaults).")
    parser.add_argument("--width", type=float, default=0.35, help="MobileNetV2 width multiplier.")
    parser.add_argument("--image-size", type=int, default=320, help="MobileNetV2 image side in pixels.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=CACHE_DIR)
    parser.add_argument("--models-dir", default="saved_models/benchmark")
    parser.add_argument("--result-dir", default="results/benchmark")
    parser.add_argument("--out", default="results/benchmark/detector_comparison.json")
    args = parser.parse_args()
    variants = args.variants.split(",")
    results: dict = {}
    for machine in args.machines.split(","):
        results[machine] = {}
        for variant in variants:
            results[machine][variant] = run_variant(variant, machine, args)
            twin = results[machine][variant]["int8_twin_official_score"]
            print(f"{machine:9s} {variant:12s} official {results[machine][variant]['official_score']:.3f}"
                  + (f" (int8 twin {twin:.3f})" if twin is not None else ""), flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)
    print(markdown(results, variants))


if __name__ == "__main__":  # guard needed: augmentation runs in spawned worker processes
    main()
