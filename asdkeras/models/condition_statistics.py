"""Per operating condition, the statistics of a new normal clip's score, from a few training normals.

Pure NumPy/SciPy, no TensorFlow: used by the networks' conditions
(:mod:`asdkeras.models.conditions`), the GMM's groups (:mod:`asdkeras.detectors.gmm`), the
thresholds (:mod:`asdkeras.scoring`) and the benchmarks that simulate them
(``benchmarks/threshold_sampling.py``).

A condition (``"<section>/<domain>"``) of the target domain is measured on about 10 clips, most of
which the network trained on; :func:`condition_statistics` corrects for both, and
:func:`prediction_scale` widens the spread so that a new clip's quantile lands where intended.
"""

from __future__ import annotations

import numpy as np

from asdkeras.models.mixtures import group_of


def prediction_scale(clips: int, quantile: float, confidence: float | None = None,
                     freedom: int | None = None) -> float:
    """How much wider than its normals' spread a new normal clip's score of a condition measured on ``clips`` lies.

    Without ``confidence``: the ``quantile`` of a Student-t prediction for one new value from
    ``clips`` values, ``t(clips - 1, quantile) * sqrt(1 + 1 / clips)``, over the normal quantile:
    dividing a condition's standardised scores by it puts every condition's ``quantile`` at the
    same level, the normal quantile ``Phi^-1(quantile)``, however few clips measured it, on
    average over the draws of those clips. (The ``quantile`` of the measured clips' own
    standardised scores lies far lower: 5 clips standardised by their own mean and spread never
    exceed 1.79.)

    With ``confidence``: the one-sided normal tolerance factor,
    ``t'(confidence; clips - 1, Phi^-1(quantile) sqrt(clips)) / sqrt(clips)`` (noncentral t), over
    the normal quantile: the level ``Phi^-1(quantile)`` then keeps at least ``quantile`` of the
    condition's new normals with probability ``confidence``. With 10 clips and 0.9 at 0.75
    confidence the threshold lies 1.67 spreads above the mean instead of 1.45: on ideal scores
    7.3 % of new normals are flagged instead of 10 %, and a 10-clip condition flags more than
    25 % a third as often (BENCHMARKS.md, "The chance floor").

    ``freedom``: the spread's degrees of freedom when it is not the clips' own (``clips - 1``),
    e.g. a spread pooled over several conditions.
    """
    import scipy.stats

    freedom = clips - 1 if freedom is None else freedom
    if clips < 2 or freedom < 1:
        return 1.0
    normal = scipy.stats.norm.ppf(quantile)
    if confidence is None:
        return float(scipy.stats.t.ppf(quantile, freedom) * np.sqrt(1 + 1 / clips) / normal)
    with np.errstate(divide="ignore"):  # Boost's noncentral t warns spuriously at some small df (2 or 4 clips)
        factor = scipy.stats.nct.ppf(confidence, freedom, normal * np.sqrt(clips)) / np.sqrt(clips)
    return float(factor / normal)


def pooled_variance(parts) -> tuple[float, int]:
    """Within-part variance pooled over ``parts`` (each about its own mean), and its degrees of
    freedom (``n - parts``, at least 1)."""
    squares = sum(float(np.sum((p - p.mean()) ** 2)) for p in parts)
    freedom = max(sum(p.size for p in parts) - len(parts), 1)
    return squares / freedom, freedom


def shrunk(estimate: float, variance: float) -> float:
    """``estimate`` shrunk towards 0 by its sampling ``variance`` (positive-part James-Stein).

    A correction measured on a few held-out clips is mostly noise when it is within its standard
    error of 0; applied in full it moved every threshold of a condition by that noise (synthetic
    valve: 5 held-out target clips per section put the test normals 0.8 spread below their mean
    and flagged none of 48).
    """
    if estimate == 0.0:
        return 0.0
    return estimate * max(0.0, 1.0 - variance / estimate ** 2)


def source_spread_floor(group: str, corrected: dict) -> float:
    """The least spread of a target condition's normal scores: its section's source spread (0 for a
    source condition, or a section without source clips).

    A target condition is measured on about 10 clips, a source one on 50-1000. The network learned
    the source condition from most of its clips, so its errors on the less familiar target
    condition vary at least as much; 10 clips that happen to be tight understate that (synthetic
    valve, seed 51, autoencoder: a target section's 10 training clips spread 0.0032, 60 fresh
    normals of it 0.0042, its section's source clips 0.0044; 37 % of the fresh normals flagged).

    Parameters
    ----------
    group : str
        A condition, ``"<section>/<domain>"`` (:func:`~asdkeras.models.mixtures.group_of`).
    corrected : dict
        Condition -> the raw scores of its training normals (the network's score units), as
        corrected for the clips the network trained on.
    """
    section, domain = group.rsplit("/", 1)
    source = corrected.get(f"{section}/source")
    if domain != "target" or source is None or source.size < 2:
        return 0.0
    return float(source.std(ddof=1))


def condition_statistics(raw_scores, sections, domains, held_out, min_held_out: int = 5,
                         quantile: float | None = None, confidence: float | None = None) -> tuple[dict, dict]:
    """Per condition, the mean and spread of the raw scores of a new normal clip.

    Every clip of a condition counts, held out or not: 5 held-out clips alone gave a mean
    0.5-1 spread off the test normals' (synthetic fan and ToyTrain), while the 45 clips the
    autoencoder trained on scored like new ones. A network that does overfit scores the clips
    it trained on low and tight; that is measured on the held-out clips and corrected, per
    domain: the **gap**, held-out minus trained-on mean (averaged over the domain's conditions
    that have both, weighted by held-out clips, at least 0) raises the trained-on clips'
    scores, and their deviations from the condition's mean are widened by the ratio of the
    held-out to the trained-on spread (pooled within conditions, each part about its own mean so
    that the gap is not counted twice; at least 1). Both are shrunk by their sampling error
    (:func:`shrunk`; the ratio on the log scale). A domain with fewer than ``min_held_out``
    held-out clips in all takes the other domain's corrections; with none anywhere there is no
    correction. A target condition's spread is at least its section's source spread
    (:func:`source_spread_floor`). Finally the spread is widened by :func:`prediction_scale` of
    the condition's clip count (at ``confidence``, if given), when ``quantile`` is given.

    Parameters
    ----------
    raw_scores : array (n,)
        The network's scores of every training normal.
    sections, domains : sequences of str
    held_out : array of bool (n,)
        Whether each clip was held out of the network's training.
    min_held_out : int
        Held-out clips a domain needs for corrections of its own.
    quantile : float, optional
        Intended share of normals kept as normal (None: no prediction widening).
    confidence : float, optional
        Probability that a condition keeps at least ``quantile`` of its new normals
        (:func:`prediction_scale`; None: ``quantile`` kept on average).

    Returns
    -------
    stats : dict
        Condition (:func:`group_of`) -> ``(mean, std)``, sorted.
    summary : dict
        Condition -> {clips, held_out, rule}; "corrections" -> per domain {gap, spread_ratio, held_out_clips}.
    """
    raw = np.asarray(raw_scores, np.float64).reshape(-1)
    held_out = np.asarray(held_out, bool)
    groups = group_of(sections, domains)
    names = sorted(set(groups))

    def corrections(domain: str) -> tuple[float, float, int]:
        mine = [g for g in names if g.endswith("/" + domain)]
        both = [g for g in mine if np.sum(held_out & (groups == g)) >= 2 and np.sum(~held_out & (groups == g)) >= 2]
        counted = int(sum(np.sum(held_out & (groups == g)) for g in both))
        if counted < min_held_out:
            return 0.0, 1.0, counted
        parts = {flag: [raw[(held_out == flag) & (groups == g)] for g in both] for flag in (True, False)}
        weights = np.array([p.size for p in parts[True]], float)
        gap = float(np.average([h.mean() - t.mean() for h, t in zip(parts[True], parts[False])], weights=weights))
        # Pooled within-condition variances, each part about its own mean: the gap is a shift of
        # the mean and is corrected as such, so it must not also count as spread.
        (held_var, held_freedom), (trained_var, trained_freedom) = map(pooled_variance, (parts[True], parts[False]))
        gap_variance = float(np.sum(weights ** 2 * np.array([held_var / h.size + trained_var / t.size
                                                              for h, t in zip(parts[True], parts[False])]))
                             / weights.sum() ** 2)
        log_ratio = 0.5 * float(np.log(max(held_var, 1e-24) / max(trained_var, 1e-24)))
        log_ratio_variance = 0.25 * (2 / held_freedom + 2 / trained_freedom)
        return (max(shrunk(gap, gap_variance), 0.0), float(np.exp(max(shrunk(log_ratio, log_ratio_variance), 0.0))),
                counted)

    measured = {d: corrections(d) for d in ("source", "target")}
    for mine, other in (("source", "target"), ("target", "source")):
        if measured[mine][2] < min_held_out:
            measured[mine] = measured[other] if measured[other][2] >= min_held_out else (0.0, 1.0, 0)
    stats, summary = {}, {"corrections": {d: {"gap": m[0], "spread_ratio": m[1], "held_out_clips": m[2]}
                                          for d, m in measured.items()}}
    corrected = {}
    for g in names:
        members = groups == g
        gap, ratio, _ = measured[g.split("/")[-1]]
        trained = members & ~held_out
        scores = raw[members].copy()
        centre = raw[trained].mean() if trained.any() else raw[members].mean()
        scores[trained[members]] = centre + gap + (raw[trained] - centre) * ratio
        corrected[g] = scores
    for g in names:
        scores, (gap, ratio, _) = corrected[g], measured[g.split("/")[-1]]
        spread = max(float(scores.std(ddof=1)) if scores.size > 1 else 0.0, 1e-12)
        rule = f"every clip, trained-on ones raised by {gap:.4g} and their spread widened x{ratio:.3g}"
        floor = source_spread_floor(g, corrected)
        if floor > spread:
            spread = floor
            rule += f"; spread raised to its section's source spread {floor:.4g}"
        if quantile is not None:
            widen = prediction_scale(int(scores.size), quantile, confidence)
            spread *= widen
            rule += f"; widened x{widen:.3g} for a new clip's {quantile:g} quantile" + (
                f" at {confidence:g} confidence" if confidence is not None else "")
        stats[g] = (float(scores.mean()), spread)
        summary[g] = {"clips": int(scores.size), "held_out": int(np.sum(held_out & (groups == g))), "rule": rule}
    return stats, summary
