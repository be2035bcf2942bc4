"""Clip scores, thresholds and decisions (higher score = more anomalous)."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import scipy.special
import scipy.stats
import tensorflow as tf

from asdkeras.errors import AsdError


def gamma_threshold(scores: np.ndarray, quantile: float = 0.9) -> float:
    """The ``quantile`` of a gamma distribution fitted to training-normal scores (DCASE baseline).

    Falls back to the empirical quantile where the fit does not give a finite value.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:
        raise AsdError("at least two training scores are needed to fit a threshold")
    if not 0 < quantile < 1:
        raise AsdError(f"threshold quantile {quantile} must lie strictly between 0 and 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            shape, loc, scale = scipy.stats.gamma.fit(scores)
            value = float(scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
        except (ValueError, RuntimeError, FloatingPointError):
            value = float("nan")
    return value if np.isfinite(value) else float(np.quantile(scores, quantile))


def decide(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 (anomaly) where the score exceeds the threshold, else 0."""
    return (np.asarray(scores) > threshold).astype(int)


def autoencoder_clip_scores(model: keras.Model, clip_vectors: tf.data.Dataset, clips_per_batch: int = 8) -> np.ndarray:
    """Mean reconstruction error over each clip's vectors, for a dataset of ``(vectors, dim)`` clips.

    Every clip has the same number of vectors (clips are fixed-length), so the flat errors fold back
    into one row per clip.
    """
    vectors_per_clip = int(clip_vectors.element_spec.shape[0] or next(iter(clip_vectors)).shape[0])
    flat = clip_vectors.batch(clips_per_batch).map(lambda b: tf.reshape(b, [-1, tf.shape(b)[-1]])).prefetch(2)
    errors = model.predict(flat, verbose=0)
    return np.asarray(errors, dtype=np.float64).reshape(-1, vectors_per_clip).mean(axis=1)


def outlier_probability_from_logits(logits: np.ndarray) -> np.ndarray:
    """1 - sigmoid(z) = sigmoid(-z), computed in float64 without cancellation near p = 1."""
    return scipy.special.expit(-np.asarray(logits, dtype=np.float64))
