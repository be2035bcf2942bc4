"""Scores judged in the operating condition that most likely produced the clip.

DCASE 2022 trains a section on ~1000 clips of its source condition and 10 of its target
condition (another speed, room or microphone), and so does an inspection app after a change of
operating condition. A network trained on that mix scores target normals systematically higher
than source normals (measured on synthetic ToyTrain, autoencoder: source normals 0.41, a target
section's normals 0.48, its anomalies 0.52), so one threshold either flags half the target clips
or misses the source anomalies.

Here a clip's raw score ``s`` is standardised by the normal scores of each condition ("group":
``"<section>/source"`` and ``"<section>/target"``: sections are different machines or products,
and a network's normal error differs between them by about its spread), ``z_g = (s - mu_g) / sigma_g``,
and the ``z_g`` are weighted by the posterior of the groups given a cheap description of the
clip (its time-averaged spectrum: per section, a Gaussian mixture of its source clips and a
kernel on each target clip, as the GMM detector models its views,
:func:`asdkeras.models.mixtures.section_mixtures`). The condition is decided by
what the clip sounds like, not by its score: a minimum over the ``z_g`` would let the widest
group call a source anomaly typical.

The target groups' statistics come from few clips, most of which the network trained on; see
:func:`condition_statistics` for how that is corrected. Everything is Keras layers after the
network, so the scoring model keeps one input and exports to TFLite like the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from asdkeras.models.gmm import assigned_group_layers, assigned_group_score, group_nll_layers
from asdkeras.models.mixtures import Mixture, fit_group_mixtures, group_of

DESCRIPTOR_COMPONENTS = 2
"""Components of each section's source mixture of clip descriptors."""
DESCRIPTOR_COVARIANCE_REG = 0.1
"""Added to the descriptor mixtures' covariance diagonals (standardised units): shrinkage for few clips."""
DESCRIPTOR_STANDARDISATION = "standardise_descriptor_condition"
"""Name of the layer that standardises the clip descriptors in :func:`conditioned_scoring_model`."""


@dataclass
class Conditions:
    """The fitted operating conditions of a detector's training normals.

    Attributes
    ----------
    descriptor_mean, descriptor_variance : array (d,)
        Standardisation of the clip descriptors (training normals' statistics).
    mixtures : dict
        Group -> :class:`~asdkeras.models.mixtures.Mixture` of standardised descriptors.
    score_stats : dict
        Group -> ``(mean, std)`` of the network's raw scores of that condition's normals.
    summary : dict
        What the statistics were computed from, per group (saved in ``detector.json``).
    """

    descriptor_mean: np.ndarray
    descriptor_variance: np.ndarray
    mixtures: dict
    score_stats: dict
    summary: dict

    def group_nll(self, descriptors: np.ndarray) -> dict[str, np.ndarray]:
        standard = (np.asarray(descriptors, np.float64) - self.descriptor_mean) / np.sqrt(self.descriptor_variance)
        return {group: mixture.nll(standard) for group, mixture in self.mixtures.items()}

    def score(self, descriptors: np.ndarray, raw_scores: np.ndarray) -> np.ndarray:
        """NumPy reference of :func:`conditioned_scoring_model`: raw scores -> condition-judged scores."""
        raw_scores = np.asarray(raw_scores, np.float64).reshape(-1)
        if len(self.score_stats) == 1:
            [(mean, std)] = self.score_stats.values()
            return (raw_scores - mean) / std
        nll = self.group_nll(descriptors)
        return assigned_group_score(nll, self.score_stats, values={g: raw_scores for g in nll})

    def with_score_stats(self, score_stats: dict, summary: dict) -> "Conditions":
        """The same conditions with another network's score statistics (the int8 twin's)."""
        return Conditions(self.descriptor_mean, self.descriptor_variance, self.mixtures, score_stats, summary)


def fit_conditions(descriptors: np.ndarray, sections, domains, seed: int = 0) -> tuple:
    """Descriptor standardisation and one mixture per condition of training-normal clips.

    Parameters
    ----------
    descriptors : array (n, d)
        Clip descriptors of every training normal (held out or not).
    sections, domains : sequences of str
        Section id and domain ("source"/"target") of each clip.

    Returns
    -------
    mean, variance : arrays (d,)
    mixtures : dict
        Condition (:func:`group_of`) -> Mixture of standardised descriptors.
    """
    descriptors = np.asarray(descriptors, np.float64)
    sections, domains = np.asarray(sections), np.asarray(domains)
    mean, variance = descriptors.mean(axis=0), descriptors.var(axis=0) + 1e-6
    standard = (descriptors - mean) / np.sqrt(variance)
    mixtures, _ = fit_group_mixtures(standard, domains, sections, DESCRIPTOR_COMPONENTS, DESCRIPTOR_COVARIANCE_REG,
                                     seed)
    return mean, variance, mixtures


def prediction_scale(clips: int, quantile: float) -> float:
    """How much wider than its normals' spread a new normal clip's score of a condition measured on ``clips`` lies.

    The ``quantile`` of a Student-t prediction for one new value from ``clips`` values,
    ``t(clips - 1, quantile) * sqrt(1 + 1 / clips)``, over the normal quantile: dividing a
    condition's standardised scores by it puts every condition's ``quantile`` at the same level,
    the normal quantile ``Phi^-1(quantile)``, however few clips measured it. (The ``quantile`` of
    the measured clips' own standardised scores lies far lower: 5 clips standardised by their own
    mean and spread never exceed 1.79.)
    """
    import scipy.stats

    if clips < 2:
        return 1.0
    return float(scipy.stats.t.ppf(quantile, clips - 1) * np.sqrt(1 + 1 / clips) / scipy.stats.norm.ppf(quantile))


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
                         quantile: float | None = None) -> tuple[dict, dict]:
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
    the condition's clip count, when ``quantile`` is given.

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
            widen = prediction_scale(int(scores.size), quantile)
            spread *= widen
            rule += f"; widened x{widen:.3g} for a new clip's {quantile:g} quantile"
        stats[g] = (float(scores.mean()), spread)
        summary[g] = {"clips": int(scores.size), "held_out": int(np.sum(held_out & (groups == g))), "rule": rule}
    return stats, summary


def as_views(outputs) -> list:
    """A network's outputs as a list of its views (one output or a list of them)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def views_matrix(outputs) -> np.ndarray:
    """Predicted view scores (one ``(clips,)`` array or a list of them) as one ``(clips, views)`` float64 matrix."""
    return np.stack([np.asarray(view, np.float64).reshape(-1) for view in as_views(outputs)], axis=1)


def raw_scores_and_descriptors(network: keras.Model, descriptor: keras.layers.Layer, dataset) -> tuple:
    """The network's raw scores ``(n, views)`` and the clip descriptors ``(n, d)`` of every clip of
    ``dataset`` (batches of features), float64, in one pass over the features.

    ``views``: the network's outputs, each a ``(clips,)`` score (one for most networks).
    """
    from asdkeras.models.inference import predict

    features = keras.Input(network.input_shape[1:])
    outputs = network(features)
    *raw, descriptors = predict(keras.Model(features, [*as_views(outputs), descriptor(features)]), dataset)
    raw = views_matrix(raw)
    return raw, np.asarray(descriptors, np.float64).reshape(len(raw), -1)


VIEW_FUSION = "max"
"""How a network's views (several raw scores, each judged in the clip's condition) are fused: by
their maximum, so a fault that one view sees is not halved by a view blind to it."""


def conditioned_scoring_model(scoring: keras.Model, descriptor: keras.layers.Layer,
                              conditions: Conditions | list[Conditions], name: str | None = None) -> keras.Model:
    """``scoring`` (features -> raw clip score) with the score judged in the clip's most likely condition.

    ``descriptor``: a layer from the same features to ``(batch, d)`` clip descriptors (its name
    should keep it float in int8 export, see :data:`asdkeras.conversion.SHARED_FLOAT_TAIL`). Layer names
    end in ``_condition`` so that they cannot clash with the network's. A list of ``conditions``,
    one per output of ``scoring`` (its views; the same groups and mixtures, each view's own score
    statistics): each view is judged, then they are fused (:data:`VIEW_FUSION`).
    """
    from asdkeras.models.layers import CombineScores, Standardise

    views = as_views(conditions)
    features = keras.Input(scoring.input_shape[1:], name="features")
    raws = as_views(scoring(features))
    suffixes = [""] if len(views) == 1 else [f"_v{index}" for index in range(len(views))]
    first = views[0]
    if len(first.score_stats) == 1:
        judged = [Standardise(*next(iter(view.score_stats.values())), name=f"standardise_condition{suffix}")(raw)
                  for view, raw, suffix in zip(views, raws, suffixes)]
    else:
        described = descriptor(features)
        standard = keras.layers.Normalization(mean=first.descriptor_mean.astype("float32"),
                                              variance=first.descriptor_variance.astype("float32"),
                                              name=DESCRIPTOR_STANDARDISATION)(described)
        nlls = group_nll_layers(standard, first.mixtures, "condition")
        judged = [assigned_group_layers(standard, first.mixtures, view.score_stats, f"condition{suffix}",
                                        f"fuse_scores_condition{suffix}", values=raw, nlls=nlls)
                  for view, raw, suffix in zip(views, raws, suffixes)]
    score = judged[0] if len(judged) == 1 else CombineScores(VIEW_FUSION, name="fuse_scores_views")(judged)
    return keras.Model(features, score, name=name or scoring.name)


def conditioned_parts(model: keras.Model) -> tuple[keras.Model, keras.layers.Layer]:
    """The network and the descriptor layer a :func:`conditioned_scoring_model` was built from
    (a saved detector's, to judge its conditions again without refitting the network).

    A model of one condition holds no descriptor: that is a one-line :class:`AsdError`.
    """
    from asdkeras.errors import AsdError

    [network] = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if DESCRIPTOR_STANDARDISATION not in {layer.name for layer in model.layers}:
        raise AsdError(f"{model.name}: judged in one condition, so it holds no clip descriptor to judge again")
    return network, model.get_layer(DESCRIPTOR_STANDARDISATION).input._keras_history.operation


def describe(conditions: Conditions) -> dict:
    """The record saved in ``detector.json``: groups, their score statistics and where they came from."""
    return {"groups": list(conditions.score_stats),
            "score_stats": {g: {"mean": m, "std": s, **conditions.summary.get(g, {})}
                            for g, (m, s) in conditions.score_stats.items()},
            "corrections": conditions.summary.get("corrections"),
            "assigned_by": "posterior of the groups' Gaussian mixtures of the clip's time-averaged spectrum"}
