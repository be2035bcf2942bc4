"""How a saved network's raw scores of each condition are distributed in its training clips, its calibration clips and fresh normals.

    .venv/bin/python benchmarks/condition_draws.py --models-dir run151/cal20/models --machines gearbox,ToyTrain \
        --variant ae --fresh-dir run151/fresh [--log]

A condition's threshold rests on the mean and spread of its few normal clips' scores
(:func:`asdkeras.models.condition_statistics.condition_statistics`). When fresh normals of a
calibrated condition are flagged far above the intended share, this says whether the clips
measured the condition badly (their mean and spread against those of fresh normals, in the fresh
normals' spreads) or whether the scores' shape defeats a mean-and-spread model (skewness and
excess kurtosis of each set). Per condition and view of the network (its first output: the AE's
clip-mean error, MobileNetV2's score), and per attribute value of the clips' names where the
condition mixes several (a bimodal condition is the first suspect).

The sets: ``train`` the dataset's training normals of the condition (as the detector's
``config.json`` names it), ``calibration`` the clips recorded there by ``calibrate``, ``fresh``
the normals ``benchmarks/normal_rates.py --fresh-dir`` wrote
(``<fresh-dir>/<machine>/<domain>/section_XX/``). ``--log`` also judges the network again on the
logarithm of its scores (the multiplicative model of a reconstruction error) and prints, per
condition, the share of fresh normals flagged by the saved detector and by the log-judged one.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import numpy as np
import scipy.stats

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdkeras.data.records import audio_files  # noqa: E402
from asdkeras.detector import Detector, read_detector_json  # noqa: E402
from asdkeras.fit import cached_features, judge_per_condition, load_config  # noqa: E402
from asdkeras.models.conditions import as_views, conditioned_parts, raw_scores_and_descriptors  # noqa: E402
from asdkeras.progress import no_progress  # noqa: E402


def attribute(path: str) -> str:
    """The attribute part of a DCASE clip name (``..._normal_0042_volt_2.5_wt_100.wav`` -> ``volt_2.5_wt_100``)."""
    stem = os.path.splitext(os.path.basename(path))[0].split("_")
    return "_".join(stem[6:]) or "-"


def raw_first_view(detector: Detector, paths: list[str], cache_dir: str) -> np.ndarray:
    """The saved network's raw score (its first view) of each audio file, before any condition judges it."""
    network, descriptor = conditioned_parts(detector.model)
    cache_paths = detector.frontend.cache(cache_dir).ensure(paths, no_progress, None)
    return raw_scores_and_descriptors(network, descriptor, detector.frontend.dataset(cache_paths))[0][:, 0]


def describe(scores: np.ndarray, fresh: np.ndarray) -> str:
    """Mean and spread of ``scores`` in units of the fresh normals' spread, their skewness and excess kurtosis."""
    spread = fresh.std(ddof=1)
    shape = (f"skew {scipy.stats.skew(scores):+.2f} kurt {scipy.stats.kurtosis(scores):+.1f}" if scores.size > 3
             else "")
    return (f"n={scores.size:3d} mean {scores.mean():.4g} ({(scores.mean() - fresh.mean()) / spread:+.2f} fresh sd) "
            f"sd {scores.std(ddof=1):.4g} (x{scores.std(ddof=1) / spread:.2f}) {shape}")


def log_judged(folder: str) -> Detector:
    """The detector of ``folder`` judged again per condition on the logarithm of its network's raw scores."""
    import keras

    kind = read_detector_json(folder)["kind"]
    config = load_config(folder, kind)
    detector = Detector.load(folder)
    network, descriptor = conditioned_parts(detector.model)
    features = keras.Input(network.input_shape[1:])
    views = [keras.ops.log(keras.ops.maximum(view, 1e-12)) for view in as_views(network(features))]
    logged = keras.Model(features, views if len(views) > 1 else views[0])
    trained, held_out = cached_features(detector.frontend.cache(config.cache_dir), list(config.normal_split()),
                                        no_progress, None)
    judged = judge_per_condition(logged, descriptor, detector.frontend, trained, held_out, config.threshold_quantile,
                                 config.seed, confidence=config.threshold_confidence)
    return replace(detector, model=judged.model, thresholds={**detector.thresholds, **judged.thresholds})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--machines", required=True)
    parser.add_argument("--variant", default="ae", help="a network detector folder name (ae, mobilenet)")
    parser.add_argument("--fresh-dir", required=True, help="normal_rates.py's --fresh-dir")
    parser.add_argument("--log", action="store_true", help="also judge on log scores and compare flagged shares")
    args = parser.parse_args()
    cache_dir = os.path.join(args.fresh_dir, "cache")
    for machine in args.machines.split(","):
        folder = os.path.join(args.models_dir, machine, args.variant)
        detector = Detector.load(folder)
        config = load_config(folder, read_detector_json(folder)["kind"])
        logged = log_judged(folder) if args.log else None
        train = [r for part in replace(config, calibration=()).normal_split() for r in part]
        sections = sorted({r.section for r in train})
        for domain, section in [(d, s) for d in ("target", "source") for s in sections]:
            fresh_paths = audio_files([os.path.join(args.fresh_dir, machine, domain, f"section_{section}")])
            sets = {"train": [r.path for r in train if (r.section, r.domain) == (section, domain)],
                    "calibration": [c["path"] for c in config.calibration
                                    if (c["section"], c["domain"]) == (section, domain)],
                    "fresh": fresh_paths}
            scores = {name: raw_first_view(detector, paths, cache_dir) for name, paths in sets.items() if paths}
            print(f"{machine} {args.variant} {section}/{domain}")
            for name, values in scores.items():
                print(f"  {name:11s} {describe(values, scores['fresh'])}")
                by_attribute: dict[str, list[float]] = {}
                for path, value in zip(sets[name], values):
                    by_attribute.setdefault(attribute(path), []).append(value)
                if len(by_attribute) > 1:
                    for value, group in sorted(by_attribute.items()):
                        group = np.asarray(group)
                        print(f"    {value:24s} n={group.size:3d} mean {group.mean():.4g} sd "
                              f"{group.std(ddof=1) if group.size > 1 else 0:.4g}")
            if logged is not None:
                shares = [float(np.mean(d.decide(d.score_files(fresh_paths, cache_dir)))) for d in (detector, logged)]
                print(f"  fresh normals flagged: saved {shares[0]:.0%}, judged on log scores {shares[1]:.0%}")


if __name__ == "__main__":
    main()
