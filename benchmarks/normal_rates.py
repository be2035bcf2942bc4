"""Each detector's false-alarm share per section and domain, measured on many fresh normals of a synthetic seed.

    .venv/bin/python benchmarks/normal_rates.py --seed 41 --models-dir /tmp/bench41/models \
        --machines fan,bearing --variants gmm-battery,ensemble-battery --clips 100

A synthetic dataset's test set holds 10 normals per section and domain, so one section's share
of flagged normals is a binomial draw of 10: at a true 10 %, 5 or more flagged happens once in
600 sections, at a true 20 % once in 30. This renders ``--clips`` further normals of every
section and domain of the same seed and types (clip indices after the test set's, so none is a
clip any detector saw), writes them as the dataset's 16-bit WAV files (the quantisation matters:
a synthetic band that is silent in float sits at the 16-bit noise floor in a file) and scores
them with the saved detectors ``<models-dir>/<machine>/<variant>``: the shares it prints are
the detectors' expected false alarms, with Wilson 95 % intervals, and separate a miscalibrated
threshold from an unlucky test set.

``--fresh-dir`` keeps the rendered clips and their features there and reuses them, so the
detectors of several runs (another rule, another seed's folder of models) are judged on the
same clips. The last lines summarise each detector over all its conditions per domain: the
mean share flagged and how many conditions flag more than issue 17's caps (25 % and 40 %).

    .venv/bin/python benchmarks/normal_rates.py --seed 101 --models-dir /tmp/seed101/models-tol75 \
        --machines fan,gearbox,bearing,slider,valve,ToyCar,ToyTrain --variants ae,gmm,ensemble \
        --clips 50 --fresh-dir /tmp/fresh101
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import scipy.stats

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from false_alarms import SECTION_CAP, TYPE_CAP  # noqa: E402  (issue 17's caps, as checked there)

from asdkeras.data.records import audio_files  # noqa: E402
from asdkeras.data.synth import SCALES, more_normals  # noqa: E402
from asdkeras.detector import Detector  # noqa: E402


def fresh_normals(machine: str, seed: int, clips: int, folder: str) -> dict[tuple[str, str], list[str]]:
    """(section, domain) -> paths of ``clips`` normal WAV files the seed's test set does not hold,
    written under ``folder/<domain>/section_XX/`` (:func:`asdkeras.data.synth.more_normals`)."""
    groups = {(section, domain): paths for domain in ("source", "target")
              for section, paths in more_normals(os.path.join(folder, domain), machine, SCALES["small"], seed, "test",
                                                 domain, clips).items()}
    return dict(sorted(groups.items()))


def kept_normals(machine: str, seed: int, clips: int, folder: str) -> dict[tuple[str, str], list[str]]:
    """:func:`fresh_normals`, or the ones a previous run wrote under ``folder/<machine>`` (a machine's
    folder appears whole: it is rendered beside it and renamed into place)."""
    done = os.path.join(folder, machine)
    marker = os.path.join(done, f".clips-{seed}-{clips}")
    if not os.path.exists(marker):
        partial = done + ".part"
        shutil.rmtree(partial, ignore_errors=True)
        fresh_normals(machine, seed, clips, partial)
        open(os.path.join(partial, os.path.basename(marker)), "w").close()
        shutil.rmtree(done, ignore_errors=True)
        os.replace(partial, done)
    return {(section[len("section_"):], domain): audio_files([os.path.join(done, domain, section)])
            for domain in ("source", "target") for section in sorted(os.listdir(os.path.join(done, domain)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--machines", required=True)
    parser.add_argument("--variants", required=True)
    parser.add_argument("--clips", type=int, default=100, help="fresh normals per section and domain")
    parser.add_argument("--fresh-dir", help="keep the rendered normals and their features here, and reuse them")
    args = parser.parse_args()
    print("| machine | detector | section | domain | flagged | 95 % interval |")
    print("|---|---|---|---|---|---|")
    scratch = args.fresh_dir or tempfile.mkdtemp(prefix="normal-rates-")
    by_condition: dict[tuple[str, str], list[float]] = {}
    for machine in args.machines.split(","):
        normals = kept_normals(machine, args.seed, args.clips, scratch)
        for variant in args.variants.split(","):
            detector = Detector.load(os.path.join(args.models_dir, machine, variant))
            by_domain: dict[str, list[float]] = {}
            for (section, domain), paths in normals.items():
                flagged = detector.decide(detector.score_files(paths, os.path.join(scratch, "cache")))
                low, high = scipy.stats.binomtest(int(flagged.sum()), len(flagged)).proportion_ci(method="wilson")
                by_domain.setdefault(domain, []).append(float(flagged.mean()))
                by_condition.setdefault((variant, domain), []).append(float(flagged.mean()))
                print(f"| {machine} | {variant} | {section} | {domain} | {flagged.mean():.0%} | {low:.0%}-{high:.0%} |")
            for domain, shares in by_domain.items():
                print(f"| {machine} | {variant} | mean | {domain} | {np.mean(shares):.0%} | |")
    print()
    for (variant, domain), values in by_condition.items():
        values = np.asarray(values)
        print(f"{variant} {domain}: {values.size} conditions, mean {values.mean():.1%} flagged, "
              f"{int(np.sum(values > TYPE_CAP))} above {TYPE_CAP * 100:g} %, {int(np.sum(values > SECTION_CAP))} above "
              f"{SECTION_CAP * 100:g} %")
    if not args.fresh_dir:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
