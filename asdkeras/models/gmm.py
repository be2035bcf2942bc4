"""Time-pooled log-mel levels with a Gaussian mixture: a detector for real recordings.

Reference: Guan, Liu et al., "Time-weighted frequency domain audio representation with GMM
estimator for anomalous sound detection", ICASSP 2023 (TWFR-GMM; code liuyoude/TWFR-GMM).

Each clip's log-mel frames are pooled over time per mel band with global weighted ranking pooling
(GWRP): the band's frame values sorted in descending order, weighted by ``r**i`` normalised to
sum 1. ``r = 1`` is the mean (stationary changes: a fan's imbalance), ``r = 0`` the maximum
(short transients: a valve's contamination, a bearing's tick, which a clip mean averages away).
Several decays may be pooled side by side into one vector. A Gaussian mixture of the training
normals' vectors gives the score: the negative log-likelihood.

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


def mixture_nll(vectors: np.ndarray, weights: np.ndarray, means: np.ndarray,
                precisions_cholesky: np.ndarray) -> np.ndarray:
    """:class:`GaussianMixtureNLL` in NumPy (float64): ``(n, d)`` vectors -> ``(n,)`` negative log-likelihoods."""
    from scipy.special import logsumexp

    d = means.shape[1]
    projected = np.einsum("nd,kde->nke", vectors, precisions_cholesky) - np.einsum("kd,kde->ke", means,
                                                                                   precisions_cholesky)
    log_det = np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    log_norm = np.log(weights) + log_det - 0.5 * d * math.log(2 * math.pi)
    return -logsumexp(log_norm - 0.5 * np.sum(projected ** 2, axis=-1), axis=1)


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
class Mixture:
    """A Gaussian mixture in standardised units: weights ``(k,)``, means ``(k, d)``, precision Cholesky ``(k, d, d)``."""

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray

    def nll(self, standardised: np.ndarray) -> np.ndarray:
        return mixture_nll(standardised, self.weights, self.means, self.precisions_cholesky)


@dataclass
class PoolingView:
    """One pooling of the log-mel frames with its domain mixtures, as fitted: a view of the clip.

    ``decay`` the GWRP decay; ``mean``/``variance`` the standardisation of its pooled vectors.
    ``mixtures``: group (:func:`group_of`, ``"<section>/<domain>"``) -> :class:`Mixture`; ``group_stats``: group ->
    (mean, std) of the out-of-fold NLLs of that group's training normals under its mixture. A
    clip's view score is its standardised NLL in the group most likely to have produced it: a
    normal clip is typical of its own domain (and target section), an anomaly of none. ``score_mean`` /
    ``score_std``: the view scores of held-out normals, for fusing views at score level.
    """

    decay: float
    mean: np.ndarray
    variance: np.ndarray
    mixtures: dict
    group_stats: dict
    score_mean: float = 0.0
    score_std: float = 1.0

    def group_nll(self, pooled: np.ndarray) -> dict[str, np.ndarray]:
        """Per group, the NLL (float64) of pooled vectors ``(n, bands)`` of this view's decay."""
        standard = (pooled - self.mean) / np.sqrt(self.variance)
        return {domain: mixture.nll(standard) for domain, mixture in self.mixtures.items()}

    def score(self, pooled: np.ndarray) -> np.ndarray:
        """View scores: ``(NLL - mean) / std`` in the most likely group (:func:`assigned_group_score`)."""
        return assigned_group_score(self.group_nll(pooled), self.group_stats)

    def standardised(self, scores: np.ndarray) -> np.ndarray:
        """View scores in units of the held-out normal scores' spread."""
        return (np.asarray(scores, np.float64) - self.score_mean) / max(self.score_std, 1e-12)


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

    The score-level fusion of :data:`VIEW_CANDIDATES`: each view's score (:meth:`PoolingView.score`)
    in units of its held-out normal scores' spread, then their ``how`` ("max" or "mean").
    """
    from asdkeras.models.layers import CombineScores, Standardise

    frames = keras.Input((frames_per_clip, n_mels), name="logmel")
    scores = []
    for view in views:
        tag = decay_tag(view.decay)
        pooled = GWRPooling([view.decay], name=f"gwrp_{tag}")(frames)
        standard = layers.Normalization(mean=np.asarray(view.mean, "float32"),
                                        variance=np.asarray(view.variance, "float32"), name=f"standardise_{tag}")(pooled)
        score = assigned_group_layers(standard, view.mixtures, view.group_stats, tag, f"fuse_scores_groups_{tag}")
        scores.append(Standardise(view.score_mean, max(view.score_std, 1e-12), name=f"standardise_score_{tag}")(score))
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


def section_mixtures(vectors: np.ndarray, domains: np.ndarray, sections: np.ndarray, section, components: int,
                      covariance_reg: float, seed: int, bandwidth: bool):
    """One section's source GMM, its target clips, their kernels' precision Cholesky factors and a summary.

    The kernels take the GMM's average covariance, scaled by :func:`kde_bandwidth` when
    ``bandwidth``. A section without source clips treats its target clips as source.
    """
    from sklearn.mixture import GaussianMixture

    source = vectors[(sections == section) & (domains != "target")]
    target = vectors[(sections == section) & (domains == "target")]
    if len(source) == 0:
        source, target = target, target[:0]
    k = max(1, min(components, len(source) // 2))
    gmm = GaussianMixture(k, covariance_type="full", reg_covar=covariance_reg, random_state=seed, max_iter=200)
    gmm.fit(source)
    summary = {"source_clips": int(len(source)), "source_components": int(k), "target_components": int(len(target))}
    if not len(target):
        return gmm, target, None, summary
    pooled_cov = np.einsum("k,kde->de", gmm.weights_, gmm.covariances_)
    chol = np.linalg.cholesky(np.linalg.inv(pooled_cov)).astype(np.float64)
    if bandwidth:
        summary["target_bandwidth"] = kde_bandwidth(target, chol)
        chol = chol / np.sqrt(summary["target_bandwidth"])
    return gmm, target, np.repeat(chol[np.newaxis], len(target), axis=0), summary


def fit_mixture(vectors: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                covariance_reg: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One mixture for a machine: per section, a GMM of its source clips plus the few target clips.

    DCASE gives a section ~1000 source clips and 10 target clips (here: whatever the data hold).
    A GMM fitted to both lets the source clips outvote the target ones, and 10 clips cannot fit
    a full covariance of their own. So per section: a ``components``-component GMM of the source
    clips, and each target clip as a component of its own with that GMM's average covariance (a
    kernel density over the target clips, close to a nearest-neighbour term in Mahalanobis
    distance). Sections weigh equally, and within a section source and target weigh half each
    (as the thresholds weigh domains), so a normal target clip near any target training clip
    scores like a normal source clip.

    Parameters
    ----------
    vectors : array (n, d)
        Standardised pooled vectors of training normals.
    domains, sections : arrays (n,)
        Domain ("source"/"target") and section id of each.
    components : int
        Components per section's source GMM (capped by its clip count).
    covariance_reg : float
        Added to every covariance diagonal (standardised units): shrinkage for few clips.

    Returns
    -------
    weights, means, precisions_cholesky, summary
    """
    all_weights, all_means, all_chol, summary = [], [], [], {}
    section_ids = sorted(set(sections))
    for section in section_ids:
        gmm, target, target_chol, summary[str(section)] = section_mixtures(
            vectors, domains, sections, section, components, covariance_reg, seed, bandwidth=False)
        share_source = 0.5 if len(target) else 1.0
        all_weights.append(gmm.weights_ * share_source / len(section_ids))
        all_means.append(gmm.means_)
        all_chol.append(gmm.precisions_cholesky_)
        if len(target):
            all_weights.append(np.full(len(target), (1 - share_source) / (len(target) * len(section_ids))))
            all_means.append(target)
            all_chol.append(target_chol)
    return (np.concatenate(all_weights), np.concatenate(all_means), np.concatenate(all_chol), summary)


def fit_group_mixtures(vectors: np.ndarray, domains: np.ndarray, sections: np.ndarray, components: int,
                       covariance_reg: float, seed: int = 0) -> tuple[dict[str, Mixture], dict]:
    """One mixture per operating condition: each section's source clips, and each section's target clips.

    Source (group ``"<section>/source"``): a ``components``-component GMM of the section's source
    clips (capped by half their count). Target (group ``"<section>/target"``): each of the
    section's target clips a component of its own with the section's source GMM's average
    covariance (10 clips cannot fit a covariance of their own). Scored apart and each
    standardised by its own group's normals (:func:`assigned_group_score`), the few target clips
    are not outvoted by the many source ones, and a condition whose normals vary more (a
    reverberant room, another microphone) is judged by its own spread. Sections' source groups
    are apart too: one source group of all sections judged every section by their pooled
    spread, and flagged 0-2 % of one section's fresh normals and 22 % of another's (synthetic
    fan, seed 41, 60 fresh normals each; ``benchmarks/normal_rates.py``). Overlapping groups
    share a clip by their posterior, so a source clip between two sections is not scored low.

    Returns
    -------
    mixtures : dict
        Group (:func:`group_of`) -> :class:`Mixture`, per section its source then its target group.
    summary : dict
        Per section: source clips, source components, target components and the kernels' bandwidth.
    """
    groups, summary = {}, {}
    for section in sorted(set(sections)):
        gmm, target, target_chol, summary[str(section)] = section_mixtures(
            vectors, domains, sections, section, components, covariance_reg, seed, bandwidth=True)
        has_source = bool(np.any((sections == section) & (domains != "target")))
        groups[f"{section}/{'source' if has_source else 'target'}"] = Mixture(
            gmm.weights_, gmm.means_, gmm.precisions_cholesky_)
        if len(target):
            groups[f"{section}/target"] = Mixture(np.full(len(target), 1 / len(target)), target, target_chol)
    return groups, summary


KDE_BANDWIDTHS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Candidate scales of the source covariance for the target clips' kernels."""


def kde_bandwidth(clips: np.ndarray, precision_cholesky: np.ndarray) -> float:
    """The scale c of the covariance (``c * Sigma``, ``Sigma^-1 = U U^T`` with ``U = precision_cholesky``) of
    a Gaussian kernel on each clip that maximises the leave-one-out likelihood of the clips.

    A target condition's clips can differ among themselves far more than the source clips do (a
    reverberant room); kernels of the source's spread then make every new target normal look
    far from all of them. With fewer than 3 clips: 1 (nothing to leave out).
    """
    n, d = clips.shape
    if n < 3:
        return 1.0
    projected = clips @ precision_cholesky
    squared = np.sum((projected[:, None, :] - projected[None, :, :]) ** 2, axis=-1)
    np.fill_diagonal(squared, np.inf)

    def loo_log_likelihood(c: float) -> float:
        from scipy.special import logsumexp

        return float(np.sum(logsumexp(-0.5 * squared / c, axis=1) - 0.5 * d * np.log(c)))

    return max(KDE_BANDWIDTHS, key=loo_log_likelihood)


def group_of(sections, domains) -> np.ndarray:
    """The operating condition of each clip, as :func:`fit_group_mixtures` names it: ``"<section>/<domain>"``."""
    return np.array([f"{s}/{'target' if d == 'target' else 'source'}" for s, d in zip(sections, domains)])
