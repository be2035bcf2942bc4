"""Time-pooled log-mel levels with a Gaussian mixture: a detector for real recordings.

Reference: Guan, Liu et al., "Time-weighted frequency domain audio representation with GMM
estimator for anomalous sound detection", ICASSP 2023 (TWFR-GMM; code liuyoude/TWFR-GMM).

Each clip's log-mel frames are pooled over time per mel band with global weighted ranking pooling
(GWRP): the band's frame values sorted in descending order, weighted by ``r**i`` normalised to
sum 1. ``r = 1`` is the mean (stationary changes: a fan's imbalance), ``r = 0`` the maximum
(short transients: a valve's contamination, a bearing's tick, which a clip mean averages away).
Several decays may be pooled side by side into one vector. A Gaussian mixture of the training
normals' vectors (fitted per operating condition in :mod:`asdkeras.models.mixtures`) gives the
score: the negative log-likelihood.

Everything after the front-end is TF ops in Keras layers (``top_k`` for the sort, a Gaussian
log-density with the precision Cholesky factors as constants), so the fitted detector is a Keras
scoring model like the others and exports to TFLite with the waveform front-end inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

PAPER_SETTINGS = {"ToyCar": (1.00, 2), "ToyTrain": (0.90, 4), "bearing": (1.00, 2), "fan": (1.00, 2),
                  "gearbox": (0.98, 4), "slider": (0.88, 1), "valve": (0.46, 2)}
"""Machine type -> (GWRP decay, mixture components) of TWFR-GMM, chosen there on the labelled DCASE
2022 dev set (its config.yaml, ``twfr-gmm``)."""

FUSED_DECAYS = (1.0, 0.5)
"""``--pooling-decay fuse``: the band mean beside a max-like pooling (``r = 0.5`` puts half the
weight on the loudest frame, a quarter on the next: the peak, less noisy than one frame), side by
side in one vector."""

VIEW_CANDIDATES = {"mean + max": (1.0, 0.0), "mean + r0.5": (1.0, 0.5)}
"""``--pooling-decay battery`` (the default): score-level fusions the battery chooses from. Each
holds a steady view (the band mean) and a transient view (the max, or r = 0.5), each with its own
mixture, their scores standardised by held-out normals and combined by their maximum, so that
neither view's evidence is diluted by the other (a mean of the two halves a transient's score
where only the max view sees it)."""

RECORDED_DECAYS = (1.0, 0.5, 0.0)
"""Single poolings whose battery figures are recorded beside the candidates (not chosen by default:
each is blind to a whole family of faults)."""


def gwrp_weights(decay: float, frames: int) -> np.ndarray:
    """GWRP weights ``r**i / sum(r**i)`` for ``frames`` values sorted in descending order (``r = 0``: the max)."""
    if not 0 <= decay <= 1:
        raise ValueError(f"GWRP decay {decay} must lie in [0, 1] (1 = mean, 0 = max)")
    weights = np.power(float(decay), np.arange(frames, dtype=np.float64)) if decay > 0 else \
        np.eye(1, frames).ravel()
    return weights / weights.sum()


def gwrp_pool(frames, decays):
    """``(batch, frames, bands)`` -> ``(batch, len(decays) * bands)``: GWRP over axis 1 per band, per decay (ops)."""
    count = frames.shape[1]
    ranked = None
    pooled = []
    for decay in decays:  # r = 1 and r = 0 need no sort: the mean and the max
        if decay == 1.0:
            pooled.append(ops.mean(frames, axis=1))
        elif decay == 0.0:
            pooled.append(ops.max(frames, axis=1))
        else:
            if ranked is None:  # (batch, bands, frames), each band's values in descending order
                ranked = ops.top_k(ops.transpose(frames, (0, 2, 1)), k=count, sorted=True)[0]
            pooled.append(ops.matmul(ranked, gwrp_weights(decay, count).astype("float32")))
    return ops.concatenate(pooled, axis=-1)


@keras.saving.register_keras_serializable(package="asdkeras")
class GWRPooling(layers.Layer):
    """``(batch, frames, bands)`` -> ``(batch, len(decays) * bands)``: GWRP over time per band, per decay."""

    def __init__(self, decays, **kwargs):
        super().__init__(**kwargs)
        self.decays = [float(d) for d in decays]

    def call(self, frames):
        return gwrp_pool(frames, self.decays)

    def compute_output_shape(self, input_shape):
        return input_shape[0], len(self.decays) * input_shape[2]

    def get_config(self):
        return {**super().get_config(), "decays": self.decays}


def _float16_parts(weights):
    """``(high, low)`` with ``high`` exactly representable in float16 and ``high + low == weights`` (float32)."""
    high = ops.cast(ops.cast(weights, "float16"), "float32")
    return high, weights - high


@keras.saving.register_keras_serializable(package="asdkeras")
class GaussianMixtureNLL(layers.Layer):
    """Negative log-likelihood of vectors under a full-covariance Gaussian mixture.

    ``-log sum_k w_k N(x; mu_k, Sigma_k)`` computed as scikit-learn's ``score_samples`` does:
    with ``U_k`` the Cholesky factor of the precision (``Sigma_k^-1 = U_k U_k^T``),
    ``log N_k = -(d log 2 pi + |x U_k - mu_k U_k|^2) / 2 + sum log diag U_k``, then a
    log-sum-exp over components. The parameters are non-trainable weights, saved with the model.
    """

    def __init__(self, components: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.components, self.dim = int(components), int(dim)
        k, d = self.components, self.dim
        self.projection = self.add_weight(shape=(d, k * d), initializer="zeros", trainable=False, name="projection")
        self.offset = self.add_weight(shape=(k * d,), initializer="zeros", trainable=False, name="offset")
        self.log_norm = self.add_weight(shape=(k,), initializer="zeros", trainable=False, name="log_norm")

    def set_mixture(self, weights: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray) -> None:
        """Load a mixture: weights ``(k,)``, means ``(k, d)``, precision Cholesky factors ``(k, d, d)``."""
        k, d = means.shape
        if (k, d) != (self.components, self.dim):
            raise ValueError(f"mixture of {k} x {d} does not fit a layer of {self.components} x {self.dim}")
        self.projection.assign(np.concatenate(list(precisions_cholesky), axis=1).astype("float32"))
        self.offset.assign(np.einsum("kd,kde->ke", means, precisions_cholesky).reshape(-1).astype("float32"))
        log_det = np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
        self.log_norm.assign((np.log(weights) + log_det - 0.5 * d * math.log(2 * math.pi)).astype("float32"))

    def call(self, vectors):
        # x U - mu U cancels: both terms are tens where their difference is about 1. Float16 weights
        # (the TFLite float16 variant) would leave errors of several NLL units, so each constant is
        # split into its float16 part and the rest: the converter folds both before storing them in
        # float16, and their sum keeps float32's precision. In float32 the sum is exact.
        projected = sum(ops.matmul(vectors, p) - o for p, o in zip(_float16_parts(self.projection),
                                                                    _float16_parts(self.offset)))
        distances = ops.sum(ops.square(ops.reshape(projected, (-1, self.components, self.dim))), axis=-1)
        return -ops.logsumexp(self.log_norm - 0.5 * distances, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "components": self.components, "dim": self.dim}


def gmm_scoring_model(frames_per_clip: int, n_mels: int, decays, mean: np.ndarray, variance: np.ndarray,
                      weights: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray,
                      name: str = "gmm_score") -> keras.Model:
    """Log-mel frames of clips -> clip score: GWRP, per-dimension standardisation, mixture NLL.

    Parameters
    ----------
    frames_per_clip, n_mels : int
        Input shape per clip (313 x 128 for 10 s).
    decays : sequence of float
        GWRP decays pooled side by side.
    mean, variance : array of shape (len(decays) * n_mels,)
        Standardisation of the pooled vectors (training normals' statistics).
    weights, means, precisions_cholesky : arrays
        The mixture in standardised units (see :meth:`GaussianMixtureNLL.set_mixture`).
    """
    frames = keras.Input((frames_per_clip, n_mels), name="logmel")
    pooled = GWRPooling(decays, name="gwrp")(frames)
    standard = layers.Normalization(mean=np.asarray(mean, "float32"), variance=np.asarray(variance, "float32"),
                                    name="standardise")(pooled)
    nll = GaussianMixtureNLL(len(weights), means.shape[1], name="gmm_nll")
    score = nll(standard)
    nll.set_mixture(weights, means, precisions_cholesky)
    return keras.Model(frames, score, name=name)


@keras.saving.register_keras_serializable(package="asdkeras")
class AssignedGroupScore(layers.Layer):
    """``[nlls, standardised]`` (two lists of ``(batch,)``) -> standardised scores weighted by ``softmax(-nll)``.

    See :func:`assigned_group_score`.
    """

    def call(self, inputs):
        nlls, standardised = (ops.stack(list(part), axis=1) for part in inputs)
        return ops.sum(ops.softmax(-nlls, axis=1) * standardised, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape[0][0]


@dataclass
class PoolingView:
    """One pooling of the log-mel frames with its domain mixtures, as fitted: a view of the clip.

    ``decay`` the GWRP decay; ``mean``/``variance`` the standardisation of its pooled vectors.
    ``mixtures``: group (:func:`~asdkeras.models.mixtures.group_of`, ``"<section>/<domain>"``) ->
    :class:`~asdkeras.models.mixtures.Mixture`; ``group_stats``: group -> (mean, std) of the
    out-of-fold NLLs of that group's training normals under its mixture. A clip's view score is
    its standardised NLL in the group most likely to have produced it: a normal clip is typical of
    its own domain (and target section), an anomaly of none; a new normal clip's is about (0, 1),
    so views are fused as they are.
    """

    decay: float
    mean: np.ndarray
    variance: np.ndarray
    mixtures: dict
    group_stats: dict

    def group_nll(self, pooled: np.ndarray) -> dict[str, np.ndarray]:
        """Per group, the NLL (float64) of pooled vectors ``(n, bands)`` of this view's decay."""
        standard = (pooled - self.mean) / np.sqrt(self.variance)
        return {domain: mixture.nll(standard) for domain, mixture in self.mixtures.items()}

    def score(self, pooled: np.ndarray) -> np.ndarray:
        """View scores: ``(NLL - mean) / std`` in the most likely group (:func:`assigned_group_score`)."""
        return assigned_group_score(self.group_nll(pooled), self.group_stats)


def assigned_group_score(nll: dict[str, np.ndarray], stats: dict[str, tuple[float, float]],
                         values: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Each clip's standardised NLL ``(nll[g] - mean_g) / std_g`` in the group most likely to have produced it.

    ``values``: per group, what is standardised instead of the NLL (a network's raw score judged
    per condition, :mod:`asdkeras.models.conditions`); the groups' posterior still comes from ``nll``.

    The groups' mixtures are proper densities, so their likelihoods say which condition most
    likely produced the clip, and the clip is judged by that condition's own normals. The choice
    is soft: the standardised NLLs weighted by the groups' posterior ``softmax(-nll)`` (equal
    priors). NLLs of different groups differ by tens for most clips, so this is the lowest-NLL
    group's value, but a clip between two conditions moves smoothly from one to the other, and
    float16 weights do not flip it. (The minimum of the standardised NLLs instead lets a group
    whose normals vary widely call almost any clip typical: it scored source normals far below
    target ones.) An infinite NLL (a group not fitted in a fold) gets weight 0.
    """
    groups = list(nll)
    values = nll if values is None else values
    stacked = np.stack([nll[g] for g in groups], axis=1)
    standard = np.stack([(values[g] - stats[g][0]) / max(stats[g][1], 1e-12) for g in groups], axis=1)
    lowest = np.min(stacked, axis=1, keepdims=True)
    weights = np.exp(-(stacked - lowest))
    weights /= weights.sum(axis=1, keepdims=True)
    return np.sum(np.where(weights > 0, weights * np.where(np.isfinite(standard), standard, 0.0), 0.0), axis=1)


def decay_tag(decay: float) -> str:
    """A layer-name-safe tag of a decay (``1.0`` -> ``r100``, ``0.5`` -> ``r050``)."""
    return f"r{round(decay * 100):03d}"


def views_scoring_model(frames_per_clip: int, n_mels: int, views: list[PoolingView], how: str = "max",
                        name: str = "gmm_score") -> keras.Model:
    """Log-mel frames -> per view: GWRP, standardisation, group mixtures' NLLs, the most likely group's score -> combined.

    The score-level fusion of :data:`VIEW_CANDIDATES`: each view's score (:meth:`PoolingView.score`,
    judged in the clip's operating condition), then their ``how`` ("max" or "mean").
    """
    from asdkeras.models.layers import CombineScores

    frames = keras.Input((frames_per_clip, n_mels), name="logmel")
    scores = []
    for view in views:
        tag = decay_tag(view.decay)
        pooled = GWRPooling([view.decay], name=f"gwrp_{tag}")(frames)
        standard = layers.Normalization(mean=np.asarray(view.mean, "float32"),
                                        variance=np.asarray(view.variance, "float32"), name=f"standardise_{tag}")(pooled)
        scores.append(assigned_group_layers(standard, view.mixtures, view.group_stats, tag, f"fuse_scores_groups_{tag}"))
    return keras.Model(frames, CombineScores(how, name="fuse_scores")(scores) if len(scores) > 1 else scores[0],
                       name=name)


def assigned_group_layers(standard, mixtures: dict, stats: dict, tag: str, fuse_name: str, values=None, nlls=None):
    """Keras layers of :func:`assigned_group_score`: per group, the NLL of ``standard`` under its
    mixture and ``(value - mean) / std`` (the NLL itself, or ``values``), fused by the groups' posterior.

    ``nlls``: the groups' NLL tensors already built (:func:`group_nll_layers`), shared by several
    scores judged in the same groups. Layer names end in ``_g<index>_<tag>`` (``fuse_name`` for the
    fusion) and start with parts of :data:`asdkeras.conversion.SHARED_FLOAT_TAIL`, so int8 export
    keeps them float.
    """
    from asdkeras.models.layers import Standardise

    nlls = nlls or group_nll_layers(standard, mixtures, tag)
    per_group = []
    for index, (group, nll) in enumerate(zip(mixtures, nlls)):
        mean, std = stats[group]
        per_group.append(Standardise(mean, max(std, 1e-12), name=f"standardise_g{index}_{tag}")(
            nll if values is None else values))
    return AssignedGroupScore(name=fuse_name)([nlls, per_group]) if len(per_group) > 1 else per_group[0]


def group_nll_layers(standard, mixtures: dict, tag: str) -> list:
    """Per group (in ``mixtures``' order), the NLL tensor of ``standard`` under its mixture (``gmm_nll_g<index>_<tag>``)."""
    nlls = []
    for index, mixture in enumerate(mixtures.values()):
        layer = GaussianMixtureNLL(len(mixture.weights), mixture.means.shape[1], name=f"gmm_nll_g{index}_{tag}")
        nlls.append(layer(standard))
        layer.set_mixture(mixture.weights, mixture.means, mixture.precisions_cholesky)
    return nlls


def pooling_model(frames_per_clip: int, n_mels: int, decays) -> keras.Model:
    """Log-mel frames -> pooled vectors (for fitting the mixture)."""
    frames = keras.Input((frames_per_clip, n_mels), name="logmel")
    return keras.Model(frames, GWRPooling(decays, name="gwrp")(frames), name="gwrp_pooling")
