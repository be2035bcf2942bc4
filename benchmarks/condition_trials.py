"""Alternative rules for judging a network's score per operating condition, tried on saved networks.

    .venv/bin/python benchmarks/condition_trials.py --seed 51 --data /tmp/exp/s51 \
        --models-dir /tmp/bench51f/models --machines valve,ToyTrain,bearing,fan --variant ae-oe

A saved autoencoder or MobileNetV2 detector holds its network, its clip descriptor and its
conditions (:mod:`asdkeras.models.conditions`). This scores, once, the detector's training
normals (as split when it was fitted), its test clips and ``--clips`` fresh normals per section
and domain of the same synthetic seed (``normal_rates.py``'s), and then judges them with each
rule below, in NumPy, without refitting anything:

* **score** -- what is standardised per condition: the raw score (``raw``, the project's rule) or
  its logarithm (``log``: a reconstruction error is positive and skewed to the right, which a
  log-normal fits better than a normal; not for a score that can be negative, as MobileNetV2's
  negative logit);
* **fusion** -- how the conditions' standardised scores ``z_g`` are weighted by the groups'
  posterior ``w_g`` from the clip's descriptor: their mean ``sum w_g z_g`` (the project's
  rule), a soft minimum ``-log sum w_g exp(-z_g)`` (the tail probability of the score under
  each condition, taken as exponential, mixed by the posterior: a clip between two conditions
  is judged by the more lenient in proportion to its posterior), or the same mixture with
  normal tails (``tail``, ``Phi^-1(1 - sum w_g (1 - Phi(z_g)))``: the level that a standard
  normal score exceeds with the mixed tail probability).

It prints per type and rule the official score of the test set, the lowest recall of a section,
and the shares of normals flagged at the detector's threshold ``Phi^-1(quantile)``, fresh and
test, per domain (mean over sections, then each section).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import scipy.stats
from scipy.special import logsumexp

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from normal_rates import fresh_normals  # noqa: E402

from asdkeras.data.layout import scan_split  # noqa: E402
from asdkeras.data.records import parse_filename  # noqa: E402
from asdkeras.detector import Detector  # noqa: E402
from asdkeras.fit import MIN_HELD_OUT_PER_CONDITION, cached_features, load_config  # noqa: E402
from asdkeras.metrics import official_score, section_metrics  # noqa: E402
from asdkeras.models.condition_statistics import condition_statistics  # noqa: E402
from asdkeras.models.conditions import (Conditions, conditioned_parts, fit_conditions,  # noqa: E402
                                        raw_scores_and_descriptors)
from asdkeras.progress import no_progress  # noqa: E402

SCORES = {"raw": lambda raw: raw, "log": lambda raw: np.log(np.maximum(raw, 1e-12))}


def fuse(log_weights: np.ndarray, standard: np.ndarray, how: str) -> np.ndarray:
    """Per clip, the conditions' standardised scores ``(clips, groups)`` fused by the log posterior
    (the alternatives; the project's mean is :meth:`Conditions.score` itself)."""
    if how == "softmin":
        return -logsumexp(log_weights - standard, axis=1)
    tail = logsumexp(log_weights + scipy.stats.norm.logsf(standard), axis=1)
    return np.clip(scipy.stats.norm.isf(np.exp(tail)), -40.0, 40.0)


FUSIONS = ("mean", "softmin", "tail")


class Scored:
    """One saved detector's network scores and clip descriptors of its training normals, test clips and fresh normals."""

    def __init__(self, folder: str, data: str, fresh: dict, cache_dir: str):
        detector = Detector.load(folder)
        config = load_config(folder, detector.kind)
        self._parts = conditioned_parts(detector.model)
        self._frontend = detector.frontend
        self.quantile = config.threshold_quantile
        trained, held_out = config.normal_split()
        (trained, trained_paths), (held_out, held_out_paths) = cached_features(
            detector.frontend.cache(config.cache_dir), [trained, held_out], no_progress, None)
        self.train = self._score(trained_paths + held_out_paths, trained + held_out)
        self.held_out = np.array([False] * len(trained_paths) + [True] * len(held_out_paths))
        self.descriptor_fit = fit_conditions(self.train["descriptors"], self.train["sections"],
                                             self.train["domains"], config.seed)
        for name, records in (("test", scan_split(data, config.machine, "test")),
                              ("fresh", [parse_filename(p, config.machine, "test") for ps in fresh.values() for p in ps])):
            cache_paths = detector.frontend.cache(cache_dir).ensure([r.path for r in records], no_progress, None)
            setattr(self, name, self._score(cache_paths, records))

    def _score(self, cache_paths: list[str], records) -> dict:
        raw, descriptors = raw_scores_and_descriptors(*self._parts, self._frontend.dataset(cache_paths))
        return {"raw": raw[:, 0], "descriptors": descriptors,  # the first view (an AE's: the clip-mean error)
                "sections": np.array([r.section for r in records]), "domains": np.array([r.domain for r in records]),
                "anomalous": np.array([r.label == "anomaly" for r in records])}

    def judge(self, score: str, fusion: str) -> dict:
        transform = SCORES[score]
        stats, summary = condition_statistics(transform(self.train["raw"]), self.train["sections"],
                                              self.train["domains"], self.held_out, MIN_HELD_OUT_PER_CONDITION,
                                              self.quantile)
        conditions = Conditions(*self.descriptor_fit, stats, summary)
        threshold = scipy.stats.norm.ppf(self.quantile)
        result = {}
        for name, clips in (("fresh", self.fresh), ("test", self.test)):
            if fusion == "mean":  # the kept rule, computed as the detectors compute it
                scores = conditions.score(clips["descriptors"], transform(clips["raw"]))
            else:
                nll = conditions.group_nll(clips["descriptors"])
                log_weights = -np.stack(list(nll.values()), axis=1)
                log_weights -= logsumexp(log_weights, axis=1, keepdims=True)
                standard = np.stack([(transform(clips["raw"]) - stats[g][0]) / stats[g][1] for g in nll], axis=1)
                scores = fuse(log_weights, standard, fusion)
            sections, domains, anomalous = clips["sections"], clips["domains"], clips["anomalous"]
            result[name] = {(s, d): float(np.mean(scores[(sections == s) & (domains == d) & ~anomalous] > threshold))
                            for s in sorted(set(sections)) for d in ("source", "target")}
            if name == "test":
                keep = sorted(set(sections))
                result["official"] = official_score([section_metrics(s, anomalous[sections == s],
                                                                     scores[sections == s], domains[sections == s])
                                                     for s in keep])
                result["recall"] = min(float(np.mean(scores[(sections == s) & anomalous] > threshold)) for s in keep)
        return result


def shares(flagged: dict, domain: str) -> str:
    values = [share for (_, d), share in flagged.items() if d == domain]
    return f"{np.mean(values):.0%} ({' '.join(f'{v:.0%}' for v in values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="the synthetic dataset's seed (for fresh normals)")
    parser.add_argument("--data", required=True, help="the synthetic dataset of that seed")
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--machines", required=True)
    parser.add_argument("--variant", default="ae-oe")
    parser.add_argument("--clips", type=int, default=60, help="fresh normals per section and domain")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="condition-trials-")
    print("| machine | score | fusion | official | lowest recall | fresh source | fresh target | test source | "
          "test target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for machine in args.machines.split(","):
        fresh = fresh_normals(machine, args.seed, args.clips, os.path.join(scratch, machine))
        scored = Scored(os.path.join(args.models_dir, machine, args.variant), args.data, fresh,
                        os.path.join(scratch, "cache"))
        for score in SCORES:
            if score == "log" and np.any(scored.train["raw"] <= 0):
                print(f"| {machine} | log | | (not applicable: some raw scores are not positive) | | | | | |")
                continue
            for fusion in FUSIONS:
                r = scored.judge(score, fusion)
                print(f"| {machine} | {score} | {fusion} | {r['official']:.3f} | {r['recall']:.0%} | "
                      f"{shares(r['fresh'], 'source')} | {shares(r['fresh'], 'target')} | "
                      f"{shares(r['test'], 'source')} | {shares(r['test'], 'target')} |", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
