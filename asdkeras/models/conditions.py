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
:func:`asdkeras.models.condition_statistics.condition_statistics` for how that is corrected.
Everything is Keras layers after the network, so the scoring model keeps one input and exports to
TFLite like the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from asdkeras.models.gmm import assigned_group_layers, assigned_group_score, group_nll_layers
from asdkeras.models.mixtures import fit_group_mixtures

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
        Condition (:func:`~asdkeras.models.mixtures.group_of`) -> Mixture of standardised descriptors.
    """
    descriptors = np.asarray(descriptors, np.float64)
    sections, domains = np.asarray(sections), np.asarray(domains)
    mean, variance = descriptors.mean(axis=0), descriptors.var(axis=0) + 1e-6
    standard = (descriptors - mean) / np.sqrt(variance)
    mixtures, _ = fit_group_mixtures(standard, domains, sections, DESCRIPTOR_COMPONENTS, DESCRIPTOR_COVARIANCE_REG,
                                     seed)
    return mean, variance, mixtures


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


def conditioned_parts(model: keras.Model, descriptor: keras.layers.Layer | None = None
                      ) -> tuple[keras.Model, keras.layers.Layer]:
    """The network and the descriptor layer a :func:`conditioned_scoring_model` was built from
    (a saved detector's, to judge its conditions again without refitting the network).

    A model judged in one condition holds no descriptor: ``descriptor`` is returned instead (the
    kind's own, to judge it in several), and without one that is a one-line :class:`AsdError`.
    """
    from asdkeras.errors import AsdError

    [network] = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if DESCRIPTOR_STANDARDISATION in {layer.name for layer in model.layers}:
        return network, model.get_layer(DESCRIPTOR_STANDARDISATION).input._keras_history.operation
    if descriptor is None:
        raise AsdError(f"{model.name}: judged in one condition, so it holds no clip descriptor to judge again")
    return network, descriptor


def describe(conditions: Conditions) -> dict:
    """The record saved in ``detector.json``: groups, their score statistics and where they came from."""
    return {"groups": list(conditions.score_stats),
            "score_stats": {g: {"mean": m, "std": s, **conditions.summary.get(g, {})}
                            for g, (m, s) in conditions.score_stats.items()},
            "corrections": conditions.summary.get("corrections"),
            "assigned_by": "posterior of the groups' Gaussian mixtures of the clip's time-averaged spectrum"}
