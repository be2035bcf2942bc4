"""Gaussian mixtures of pooled log-mel vectors, fitted per operating condition (NumPy and
scikit-learn, no TensorFlow): the GMM detector's statistics, which :mod:`asdkeras.models.gmm`
turns into Keras layers.

Reference: Guan, Liu et al., "Time-weighted frequency domain audio representation with GMM
estimator for anomalous sound detection", ICASSP 2023 (TWFR-GMM); the target clips' kernels are
this project's (DCASE 2022's 10 target clips a section cannot fit a covariance of their own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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



@dataclass
class Mixture:
    """A Gaussian mixture in standardised units: weights ``(k,)``, means ``(k, d)``, precision Cholesky ``(k, d, d)``."""

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray

    def nll(self, standardised: np.ndarray) -> np.ndarray:
        return mixture_nll(standardised, self.weights, self.means, self.precisions_cholesky)



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
