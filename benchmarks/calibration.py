"""Calibrating saved detectors with fresh normals of each target condition: decisions before and after.

    .venv/bin/python benchmarks/calibration.py --seed 151 --data run151 --models-dir run151/models \
        --result-dir run151/results --machines gearbox,valve,ToyTrain --clips 20 --out run151/calibrated-20

A synthetic seed's target domain has 10 training clips per section, and a detector fitted on them
can flag a quarter of a section's target normals (seed 151, gearbox: README, "When a new condition
flags too many normals in use"). This renders ``--clips`` further target-domain training normals
of every section of the same seed (clip indices after the dataset's, so the same operating
condition and none a detector saw), copies ``--models-dir`` to ``<out>/models``, runs ``python
cli.py calibrate`` there (once per type since session 26's later commit; the figures in
BENCHMARKS.md came from one call per section), and tests every saved detector (and its variants)
into ``<out>/results``. Printed per type and detector: the official score and the share of test
normals flagged per domain (the mean over sections, the worst section in brackets), before (the
metrics already in ``--result-dir``, as ``demo`` or ``test`` wrote them) and after. Measure the
shares on more normals with ``benchmarks/normal_rates.py --models-dir <out>/models``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from false_alarms import DOMAINS, decisions, read  # noqa: E402

from asdkeras.data.synth import SCALES, more_normals  # noqa: E402
from asdkeras.names import saved_variants, variant_result_name  # noqa: E402

CLI = os.path.join(os.path.dirname(HERE), "cli.py")


def run(*args: str) -> None:
    subprocess.run([sys.executable, CLI, "--quiet", *args], check=True)


def shares(document: dict) -> str:
    """Normals flagged per domain (mean over sections, worst section) and the lowest recall of a section's domain."""
    made = decisions(document)
    return (" / ".join(f"{sum(made['alarms'][d]) / len(made['alarms'][d]):.0%} ({max(made['alarms'][d]):.0%})"
                       for d in DOMAINS) + f"; {made['recall']:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--result-dir", required=True, help="the detectors' test metrics before calibrating")
    parser.add_argument("--machines", required=True)
    parser.add_argument("--clips", type=int, default=20, help="fresh target normals per section")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache-dir", help="feature cache [<out>/cache]")
    parser.add_argument("--table-only", action="store_true", help="print the table of a finished run in --out")
    args = parser.parse_args()
    models, results = os.path.join(args.out, "models"), os.path.join(args.out, "results")
    cache = args.cache_dir or os.path.join(args.out, "cache")
    if not args.table_only:
        shutil.rmtree(models, ignore_errors=True)
        shutil.copytree(args.models_dir, models)
    rows = []
    for machine in args.machines.split(","):
        if not args.table_only:
            calibrate_and_test(machine, args, models, results, cache)
        for kind in sorted(os.listdir(os.path.join(models, machine))):
            variants = saved_variants(os.path.join(models, machine, kind))
            for name in [kind] + [variant_result_name(kind, variant) for variant in variants]:
                before, after = read(args.result_dir, name, machine), read(results, name, machine)
                if before and after:
                    rows.append(f"| {machine} | {name} | {before['official_score']:.3f} -> {after['official_score']:.3f} "
                                f"| {shares(before)} | {shares(after)} |")
    print(f"\ncalibrated with {args.clips} fresh target normals per section (seed {args.seed})\n")
    print("| machine | detector | official score | normals flagged before, source / target; lowest recall | after |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


def calibrate_and_test(machine: str, args, models: str, results: str, cache: str) -> None:
    """Calibrate every section of ``machine`` with fresh target normals, then test every saved detector."""
    clips = more_normals(os.path.join(args.out, "clips", machine), machine, SCALES["small"], args.seed, "train",
                         "target", args.clips)
    run("calibrate", "--machine", machine, *(path for paths in clips.values() for path in paths), "--data", args.data,
        "--models-dir", models, "--cache-dir", cache)  # the clips' DCASE names say their sections
    for kind in sorted(os.listdir(os.path.join(models, machine))):
        run("test", "--machine", machine, "--model", kind, "--data", args.data, "--models-dir", models,
            "--result-dir", results, "--cache-dir", cache)


if __name__ == "__main__":
    main()
