"""A deliberately simple reference detector, used to check how hard a dataset is.

Each clip becomes the mean and standard deviation of its log-mel bands over time
(2 x 128 numbers). A test clip's score is its Euclidean distance to the nearest training
normal of the same section, after standardising every statistic with the training clips'
mean and spread. No learning, no labels: if this detector scores AUC near 1 the data are too
easy to tell detectors apart, near 0.5 they are hopeless.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from asdkeras.features import LogMelConfig, log_mel_spectrogram


def clip_statistics(waveforms: np.ndarray, config: LogMelConfig = LogMelConfig(), batch: int = 32) -> np.ndarray:
    """Per-clip log-mel mean and std over time, shape ``(clips, 2 * n_mels)``; input ``(clips, samples)``."""
    out = []
    for start in range(0, len(waveforms), batch):
        logmel = log_mel_spectrogram(tf.constant(waveforms[start:start + batch]), config)
        out.append(tf.concat([tf.reduce_mean(logmel, axis=1), tf.math.reduce_std(logmel, axis=1)], axis=1).numpy())
    return np.concatenate(out).astype(np.float64)


def nearest_neighbour_scores(train_stats: np.ndarray, train_groups: np.ndarray,
                             test_stats: np.ndarray, test_groups: np.ndarray) -> np.ndarray:
    """Distance from each test clip to its nearest training clip of the same group (section)."""
    mean, std = train_stats.mean(axis=0), train_stats.std(axis=0) + 1e-9
    train_z, test_z = (train_stats - mean) / std, (test_stats - mean) / std
    scores = np.empty(len(test_stats))
    for group in np.unique(test_groups):
        reference = train_z[train_groups == group]
        queries = np.flatnonzero(test_groups == group)
        distances = np.linalg.norm(test_z[queries, None, :] - reference[None, :, :], axis=-1)
        scores[queries] = distances.min(axis=1)
    return scores
