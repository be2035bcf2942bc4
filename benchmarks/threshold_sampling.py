"""How often a perfectly calibrated threshold misses issue 17's false-alarm targets by chance alone.

    .venv/bin/python benchmarks/threshold_sampling.py                       # the demo's target domain
    .venv/bin/python benchmarks/threshold_sampling.py --clips 50            # its source domain
    .venv/bin/python benchmarks/threshold_sampling.py --rule tolerance --confidence 0.75

A condition (a section's domain) is measured on ``--clips`` training normals: their mean and
spread set where its 0.9 quantile is believed to lie, widened for a new clip
(:func:`asdkeras.models.condition_statistics.prediction_scale`) by a Student-t prediction (the rule
before session 18) or by a one-sided normal tolerance factor (``--rule tolerance``, the default since:
the quantile lies below the threshold with probability ``--confidence``). A type has ``--sections`` conditions per domain, each judged on
``--test-clips`` test normals. Scores are ideal: every clip of a condition, training or test, is drawn
from one distribution (normal, or Student-t with ``--tail-df`` degrees of freedom for heavier tails),
so every miss here is sampling error, the floor under any detector trained on so few clips.

Per trial (one type-domain of one seed) it counts the share of test normals flagged over the type's
sections, and the largest single section's share. It prints the mean share, the chance of each of
issue 17's targets being missed (type-domain above 20 % and above 25 %, a section above 40 %), and
how many misses to expect over ``--type-seeds`` type-seeds (35: seven types, five seeds). The last
two columns are each condition's true share, the share of all its normals above its threshold,
as ``normal_rates.py`` measures it on fresh normals: the chance that a condition flags more than
25 % or 40 % of its normals.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import scipy.stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from false_alarms import MEAN_TARGET, SECTION_CAP, TYPE_CAP  # noqa: E402  (issue 17's caps, as checked there)

from asdkeras.models.condition_statistics import prediction_scale  # noqa: E402


def threshold_factor(clips: int, quantile: float, rule: str, confidence: float) -> float:
    """Multiples of the measured spread above the measured mean at which a condition's threshold lies.

    ``Phi^-1(quantile) * prediction_scale(clips, quantile, confidence)``, the project's widening:
    ``prediction``, the Student-t prediction for one new clip (the default before session 18);
    ``tolerance``, the one-sided normal tolerance factor at ``confidence`` (the default since).
    """
    return float(scipy.stats.norm.ppf(quantile)) * prediction_scale(clips, quantile,
                                                                     confidence if rule == "tolerance" else None)


def draw(rng: np.random.Generator, shape: tuple, tail_df: float) -> np.ndarray:
    """Ideal normal scores (unit spread), or Student-t ones scaled to unit spread."""
    if not np.isfinite(tail_df):
        return rng.standard_normal(shape)
    return rng.standard_t(tail_df, shape) / np.sqrt(tail_df / (tail_df - 2))


def population_share_above(threshold: np.ndarray, tail_df: float) -> np.ndarray:
    """Share of all of a condition's scores (as :func:`draw` draws them) above ``threshold``."""
    if not np.isfinite(tail_df):
        return scipy.stats.norm.sf(threshold)
    return scipy.stats.t.sf(threshold * np.sqrt(tail_df / (tail_df - 2)), tail_df)


def simulate(clips: int, test_clips: int, sections: int, quantile: float, rule: str, confidence: float,
             tail_df: float, trials: int, seed: int) -> dict:
    """Flagged shares of ``trials`` simulated type-domains; see the module docstring."""
    rng = np.random.default_rng(seed)
    factor = threshold_factor(clips, quantile, rule, confidence)
    training = draw(rng, (trials, sections, clips), tail_df)
    threshold = training.mean(axis=2) + factor * training.std(axis=2, ddof=1)
    flagged = draw(rng, (trials, sections, test_clips), tail_df) > threshold[:, :, None]
    section_share = flagged.mean(axis=2)
    type_share = section_share.mean(axis=1)
    true_share = population_share_above(threshold, tail_df)
    return {"factor": factor, "mean": float(type_share.mean()),
            "condition_above_type_cap": float(np.mean(true_share > TYPE_CAP)),
            "condition_above_section_cap": float(np.mean(true_share > SECTION_CAP)),
            "above_mean_target": float(np.mean(type_share > MEAN_TARGET)),
            "above_type_cap": float(np.mean(type_share > TYPE_CAP)),
            "section_above_cap": float(np.mean(section_share.max(axis=1) > SECTION_CAP))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[10],
                        help="training normals per condition (the demo: 10 target, 50 source)")
    parser.add_argument("--test-clips", type=int, default=10, help="test normals per section and domain")
    parser.add_argument("--sections", type=int, default=3)
    parser.add_argument("--quantile", type=float, default=0.9, help="intended share of normals kept as normal")
    parser.add_argument("--rule", choices=("prediction", "tolerance"), default="prediction")
    parser.add_argument("--confidence", type=float, default=0.75, help="the tolerance rule's confidence")
    parser.add_argument("--tail-df", type=float, default=float("inf"),
                        help="Student-t degrees of freedom of the scores (inf: normal)")
    parser.add_argument("--trials", type=int, default=200_000)
    parser.add_argument("--type-seeds", type=int, default=35, help="type-seeds to express expected misses over")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.tail_df <= 2:
        parser.error(f"--tail-df must exceed 2 (a finite spread). Received: {args.tail_df}")
    if min(args.clips) < 2:
        parser.error(f"--clips must be at least 2 (a spread needs two clips). Received: {args.clips}")

    print(f"rule {args.rule}{f' (confidence {args.confidence:g})' if args.rule == 'tolerance' else ''}, "
          f"quantile {args.quantile:g}, {args.sections} sections x {args.test_clips} test normals, "
          f"scores {'normal' if not np.isfinite(args.tail_df) else f'Student-t, {args.tail_df:g} df'}, "
          f"{args.trials} trials; expected misses over {args.type_seeds} type-seeds in brackets")
    print("| clips | factor | mean flagged | type-domain > 20 % | type-domain > 25 % | a section > 40 % "
          "| a condition's true share > 25 % | > 40 % |")
    print("|---|---|---|---|---|---|---|---|")
    for clips in args.clips:
        result = simulate(clips, args.test_clips, args.sections, args.quantile, args.rule, args.confidence,
                          args.tail_df, args.trials, args.seed)
        cells = [f"{result[k]:.3f} ({result[k] * args.type_seeds:.1f})"
                 for k in ("above_mean_target", "above_type_cap", "section_above_cap")]
        print(f"| {clips} | {result['factor']:.2f} | {result['mean']:.3f} | " + " | ".join(cells)
              + f" | {result['condition_above_type_cap']:.3f} | {result['condition_above_section_cap']:.4f} |")


if __name__ == "__main__":
    main()
