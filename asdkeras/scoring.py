"""Decision thresholds, score statistics and decisions (higher score = more anomalous).

A threshold is fitted to clip scores of **held-out** training normals (clips the network did
not train on), so that it flags about the intended share of new normal clips. Every rule
returns the value together with a record of how it was set, which the detector saves.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.special
import scipy.stats

from asdkeras.errors import AsdError
from asdkeras.models.condition_statistics import shrunk

AGREEMENT_P_VALUE = 0.05
"""The gamma quantile is kept only while the share of fitted scores above it is consistent
(two-sided binomial test at this level) with the intended share; otherwise the empirical
quantile is used."""


def _check_scores(scores, quantile: float) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size < 2:
        raise AsdError("at least two normal clip scores are needed to fit a threshold")
    if not np.all(np.isfinite(scores)):
        raise AsdError("normal clip scores hold NaN or infinite values; the model diverged, fit it again")
    if not 0 < quantile < 1:
        raise AsdError(f"threshold quantile {quantile} must lie strictly between 0 and 1")
    return scores


def fit_gamma(scores) -> tuple[float, float] | None:
    """Shape and scale of a gamma distribution with its location fixed at 0, or None.

    The location is fixed because a free one lands on the smallest score and gives absurd
    quantiles: on one machine a free fit returned shape 0.26 and a 0.9 quantile of 1.42 where
    the scores' own 90th percentile was 0.434. Scores that are not all positive (log-likelihoods,
    logits) have no gamma fit.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.min() <= 0 or np.ptp(scores) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            shape, _, scale = scipy.stats.gamma.fit(scores, floc=0)
        except (ValueError, RuntimeError, FloatingPointError):
            return None
    return (float(shape), float(scale)) if np.isfinite(shape) and np.isfinite(scale) and shape > 0 else None


def balance_groups(scores, groups) -> np.ndarray:
    """Scores with every group (domain) repeated cyclically to the size of the largest, so each weighs equally."""
    scores, groups = np.asarray(scores, dtype=np.float64), np.asarray(groups)
    members = [scores[groups == g] for g in np.unique(groups)]
    size = max(len(m) for m in members)
    return np.concatenate([np.resize(m, size) for m in members])


def _flagged_by_group(scores: np.ndarray, groups, value: float) -> dict:
    """``{"flagged_share_by_group": {group: share of its scores above value}}``, or {} without groups."""
    if groups is None:
        return {}
    groups = np.asarray(groups)
    return {"flagged_share_by_group": {str(g): float(np.mean(scores[groups == g] > value)) for g in np.unique(groups)}}


def quantile_threshold(scores, quantile: float = 0.9, what: str = "held-out normal clip scores",
                       groups=None) -> dict:
    """The ``quantile`` of the normal score distribution: a gamma fit where it describes the scores.

    Parameters
    ----------
    scores : array of float
        Clip scores of normal clips the model did not train on.
    quantile : float
        Intended share of normal clips kept as normal (0.9: about 10 % of normals flagged).
    what : str
        Description of the scores, for the record.
    groups : array of str, optional
        Domain of each score. Groups are weighted equally: DCASE training has 99 source clips
        for each target clip, and a detector under domain shift scores target normals higher,
        so an unweighted quantile lands on the few target clips and flags no source normal.

    Returns
    -------
    dict
        ``value`` (the threshold), ``rule`` ("gamma" or "empirical"), ``quantile``, ``fitted_on``
        (count), ``empirical`` (the scores' own quantile), ``flagged_share`` (share of these
        scores above the threshold), ``description`` (one sentence) and, for the gamma rule,
        ``gamma`` = {shape, scale}.
    """
    scores = _check_scores(scores, quantile)
    count = scores.size
    groups = None if groups is None or len(set(groups)) < 2 else np.asarray(groups)
    if groups is not None:
        what += f", {' and '.join(sorted(set(groups)))} weighted equally"
    fitted = scores if groups is None else balance_groups(scores, groups)
    empirical = float(np.quantile(fitted, quantile))
    record = {"quantile": quantile, "fitted_on": int(count), "empirical": empirical}

    def finish(value: float, **extra) -> dict:
        return {**record, "value": value, "flagged_share": float(np.mean(fitted > value)),
                **_flagged_by_group(scores, groups, value), **extra}

    gamma = fit_gamma(fitted)
    reason = "scores are not all positive" if gamma is None else None
    if gamma is not None:
        value = float(scipy.stats.gamma.ppf(quantile, gamma[0], scale=gamma[1]))
        above = int(round(np.mean(fitted > value) * count))  # the weighted share, over the real count
        agreement = scipy.stats.binomtest(above, count, 1 - quantile).pvalue
        if np.isfinite(value) and agreement >= AGREEMENT_P_VALUE:
            return finish(value, rule="gamma", gamma={"shape": gamma[0], "scale": gamma[1]},
                          description=f"{quantile:g} quantile of a gamma distribution (location 0) fitted to "
                                      f"{count} {what}")
        reason = (f"the gamma fit's quantile {value:.4g} leaves {above} of {count} scores above it, "
                  f"inconsistent with {1 - quantile:.0%} (binomial p = {agreement:.3f})")
    return finish(empirical, rule="empirical", fallback_reason=reason,
                  description=f"empirical {quantile:g} quantile of {count} {what} ({reason})")


def prediction_threshold(scores, domains, quantile: float, measured: str, confidence: float | None = None) -> dict:
    """The threshold on scores judged per condition: the normal ``quantile``, ``Phi^-1(quantile)``.

    Each condition's scores are standardised and widened for a new clip
    (:func:`asdkeras.models.condition_statistics.prediction_scale`), so a new normal clip of any condition
    exceeds this level with about ``1 - quantile`` probability. ``scores``/``domains``: normal
    clips to check it on (held-out ones); ``flagged_share_by_group`` is their share above it per
    domain. ``measured``: what the conditions' statistics were measured on, for the description;
    ``confidence``: the tolerance the conditions were widened for, if any (recorded).
    """
    scores, domains = _check_scores(scores, quantile), np.asarray(domains)
    value = float(scipy.stats.norm.ppf(quantile))
    widening = ("Student-t prediction" if confidence is None
                else f"normal tolerance bound, kept by every condition with probability {confidence:g},")
    return {"quantile": quantile, "confidence": confidence, "value": value, "rule": "condition-prediction",
            "fitted_on": int(scores.size),
            "empirical": float(np.quantile(scores, quantile)), "flagged_share": float(np.mean(scores > value)),
            **_flagged_by_group(scores, domains, value),
            "description": f"the {quantile:g} quantile of a new normal clip's score in its operating condition "
                           f"({widening} from {measured}); flagged shares from {scores.size} of them"}


FUSION_DRAWS = 200_000
"""Monte Carlo draws for the quantile of a max over members (seeded: the threshold is reproducible)."""


def combine_members(parts, how: str) -> np.ndarray:
    """Mean or max over members (columns) of standardised scores ``(clips, members)``."""
    parts = np.asarray(parts, np.float64)
    return parts.mean(axis=1) if how == "mean" else parts.max(axis=1)


def member_correlation(parts) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of the members' standardised normal scores, as measured and as used.

    Each coefficient is shrunk by its sampling error on the Fisher scale (``1 / (n - 3)``,
    :func:`asdkeras.models.condition_statistics.shrunk`) and floored at 0: two detectors of the same clip
    do not disagree systematically about normals, and a negative estimate from the ~20 clips no
    member trained on is noise that would lower the threshold (synthetic bearing: -0.38 on 18
    held-out clips, +0.06 on 180 test normals). Returns ``(measured, used)``, both ``(k, k)``.
    """
    parts = np.asarray(parts, np.float64)
    members = parts.shape[1]
    spread = parts.std(axis=0)
    if parts.shape[0] < 4 or np.any(spread == 0):
        return np.eye(members), np.eye(members)
    measured = np.corrcoef(parts, rowvar=False)
    fisher = np.arctanh(np.clip(measured, -0.999, 0.999))
    used = np.maximum(np.tanh(np.vectorize(lambda z: shrunk(float(z), 1 / (parts.shape[0] - 3)))(fisher)), 0.0)
    np.fill_diagonal(used, 1.0)
    values, vectors = np.linalg.eigh(used)  # floored coefficients may leave a matrix that is not a correlation
    used = (vectors * np.maximum(values, 1e-9)) @ vectors.T
    scale = np.sqrt(np.diag(used))
    return measured, used / np.outer(scale, scale)


def fused_prediction_threshold(parts, how: str, quantile: float = 0.9, what: str = "held-out normal clip scores",
                               groups=None, columns: str = "members") -> dict:
    """The ``quantile`` of a new normal clip's fused score, from its members' correlation.

    Every member's score is standardised so that a new normal clip's is about ``(0, 1)``
    (:func:`asdkeras.ensemble_members.fusion_statistics`); the fused score is their mean or max. Its
    ``quantile`` is that of the mean or max of a normal vector with the members' correlation
    (:func:`member_correlation`): exact for the mean, ``sqrt(sum(R)) / k * Phi^-1(quantile)``,
    Monte Carlo for the max. Only the correlation comes from ``parts``, so the ~20 clips that no
    member trained on (one or two target clips a section) do not set the level themselves: a
    Student-t quantile of their fused scores flagged 37 % of synthetic bearing's target normals
    (60 % in one section); this rule flags 13 % (BENCHMARKS.md, "The fused threshold").

    Parameters
    ----------
    parts : array (n, k)
        Standardised scores of ``n`` normal clips no member trained on, one column per member.
    how : {"mean", "max"}
    quantile : float
        Intended share of normal clips kept as normal.
    what : str
        What ``parts`` are, for the record.
    groups : array of str, optional
        Domain of each clip: the record's ``flagged_share_by_group``.
    columns : str
        What the columns are, for the record ("members"; "views" of one network).
    """
    parts = np.asarray(parts, np.float64)
    if parts.ndim != 2 or parts.shape[0] < 2:
        raise AsdError("at least two normal clips scored by every member are needed to fit a fused threshold")
    if not np.all(np.isfinite(parts)):
        raise AsdError("normal clip scores hold NaN or infinite values; the model diverged, fit it again")
    if not 0 < quantile < 1:
        raise AsdError(f"threshold quantile {quantile} must lie strictly between 0 and 1")
    measured, used = member_correlation(parts)
    members = parts.shape[1]
    if how == "mean":
        value = float(scipy.stats.norm.ppf(quantile) * np.sqrt(used.sum()) / members)
        normal = {"mean": 0.0, "std": float(np.sqrt(used.sum()) / members)}
    else:
        draws = _fused_normal_draws(used, how)
        value = float(np.quantile(draws, quantile))
        normal = {"mean": float(draws.mean()), "std": float(draws.std())}
    fused = combine_members(parts, how)
    groups = None if groups is None or len(set(groups)) < 2 else np.asarray(groups)
    return {"quantile": quantile, "value": value, "rule": "fused-prediction", "combine": how,
            "fitted_on": int(parts.shape[0]),
            "empirical": float(np.quantile(fused, quantile)), "flagged_share": float(np.mean(fused > value)),
            **_flagged_by_group(fused, groups, value),
            "correlation": {"measured": measured.round(4).tolist(), "used": used.round(4).tolist()},
            "new_normal": normal,
            "description": f"{quantile:g} quantile of the {how} of {members} {columns}' standardised scores of a new "
                           f"normal clip, each (0, 1), correlated as measured on {parts.shape[0]} {what} "
                           f"(shrunk by sampling error, floored at 0)"}


def _fused_normal_draws(correlation: np.ndarray, how: str) -> np.ndarray:
    """Seeded draws of the mean or max of standard normals with this correlation (:data:`FUSION_DRAWS` of them)."""
    zeros = np.zeros(len(correlation))
    try:
        draws = np.random.default_rng(0).multivariate_normal(zeros, correlation, FUSION_DRAWS, method="cholesky")
    except np.linalg.LinAlgError:  # singular: scores that move together (a record's correlation rounded to 1)
        draws = np.random.default_rng(0).multivariate_normal(zeros, correlation, FUSION_DRAWS, method="eigh")
    return combine_members(draws, how)


def fused_normal_statistics(correlation, how: str) -> tuple[float, float]:
    """Mean and standard deviation of a new normal clip's fused score: the mean or max of standard
    normals correlated as ``correlation`` (``(k, k)``, as :func:`fused_prediction_threshold` records it as ``used``).

    The mean of them is ``(0, sqrt(sum(R)) / k)``; their max lies above 0 (two independent ones:
    mean 0.56, standard deviation 0.83), from the same seeded draws as the threshold.
    """
    correlation = np.asarray(correlation, np.float64)
    if how == "mean":
        return 0.0, float(np.sqrt(correlation.sum()) / len(correlation))
    draws = _fused_normal_draws(correlation, how)
    return float(draws.mean()), float(draws.std())


def eq2_threshold(p_machine, alpha: float = 0.04) -> dict:
    """The report's Eq. 2 on p(this machine), expressed on the score -logit(p).

    A clip is an anomaly when p < (1 - alpha) x mean p over the training clips, i.e. when its
    score -logit(p) exceeds -logit((1 - alpha) x mean p).
    """
    if not 0 <= alpha <= 1:
        raise AsdError(f"threshold alpha {alpha} must lie in [0, 1] (the report uses 0.04)")
    p_machine = np.asarray(p_machine, dtype=np.float64)
    p_threshold = float((1 - alpha) * np.mean(p_machine))
    return {"value": float(-scipy.special.logit(p_threshold)), "rule": "eq2", "alpha": alpha,
            "p_threshold": p_threshold, "fitted_on": int(p_machine.size),
            "description": f"report Eq. 2: anomaly when p(machine) < (1 - {alpha:g}) x mean p over "
                           f"{p_machine.size} training clips = {p_threshold:.4g}"}


def score_statistics(scores) -> dict:
    """Count, mean, standard deviation, extremes and (positive scores) gamma fit of normal clip scores.

    Saved with each detector so that scores of different detectors can be put on one scale.
    """
    scores = np.asarray(scores, dtype=np.float64)
    gamma = fit_gamma(scores) if scores.size >= 2 else None
    return {"count": int(scores.size), "mean": float(scores.mean()), "std": float(scores.std(ddof=1)) if scores.size > 1 else 0.0,
            "min": float(scores.min()), "max": float(scores.max()),
            "gamma": {"shape": gamma[0], "scale": gamma[1]} if gamma else None}


def decide(scores, threshold: float) -> np.ndarray:
    """1 (anomaly) where the score exceeds the threshold, else 0."""
    return (np.asarray(scores) > threshold).astype(int)
