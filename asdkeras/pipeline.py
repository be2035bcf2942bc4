"""Training datasets from cached features: spectrogram images, augmented clips, log-mel vectors with outliers mixed in.

Features are computed once per clip and kept on disk (:mod:`asdkeras.feature_cache`, decoding in
:mod:`asdkeras.decoding`); the datasets here stream from that cache file by file, so the feature
set is never held in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from typing import Sequence

import numpy as np
import tensorflow as tf

from asdkeras.decoding import AUTOTUNE
from asdkeras.errors import AsdError
from asdkeras.feature_cache import file_fingerprint, load_cached
from asdkeras.features import ImageConfig, LogMelConfig, stack_frames
from asdkeras.processes import map_in_processes
from asdkeras.progress import Progress, no_progress


def image_dataset(cache_paths: Sequence[str], config: ImageConfig, batch_size: int, labels: Sequence[float] | None = None,
                  shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batches of ``(size, size, 3)`` float32 images in [0, 255], with labels when given."""
    size = config.image_size

    def load(path):
        image = load_cached(path, [size, size])
        return tf.tile(image[..., tf.newaxis], [1, 1, 3])

    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(list(cache_paths)).map(load, num_parallel_calls=AUTOTUNE)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((list(cache_paths), np.asarray(labels, np.float32)))
        if shuffle:
            dataset = dataset.shuffle(len(cache_paths), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.map(lambda p, y: (load(p), y), num_parallel_calls=AUTOTUNE)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def augmented_clips(source_paths: Sequence[str], count: int, config, cache_root: str, seed: int,
                    progress: Progress = no_progress, workers: int | None = None, channel: int | None = None) -> list[str]:
    """``count`` augmented copies of the source clips (cycling through them), cached as WAV files.

    Copy ``i`` is made from ``source_paths[i % len(source_paths)]`` with seed ``seed + i``; the
    folder is keyed by the sources, the augmentation settings and the seed, so a rerun with the
    same inputs reuses every file and only missing ones are made.
    """
    from asdkeras.augment import write_augmented

    if count <= 0:
        return []
    if not source_paths:
        raise AsdError("no clips to augment")
    key = json.dumps([file_fingerprint(p) for p in source_paths] + [asdict(config), seed]
                     + ([channel] if channel is not None else []), sort_keys=True)
    folder = os.path.join(cache_root, "augmented", hashlib.sha1(key.encode()).hexdigest()[:16])
    os.makedirs(folder, exist_ok=True)
    jobs = [(source_paths[i % len(source_paths)], os.path.join(folder, f"aug_{i:05d}.wav"), seed + i, config, channel)
            for i in range(count)]
    todo = [job for job in jobs if not os.path.isfile(job[1])]
    if todo:
        for _ in progress(map_in_processes(write_augmented, todo, workers, chunksize=2), len(todo)):
            pass
    return [job[1] for job in jobs]


def clip_vectors_dataset(cache_paths: Sequence[str], config: LogMelConfig = LogMelConfig()) -> tf.data.Dataset:
    """One element per clip, in order: its stacked log-mel vectors ``(vectors, vector_size)``."""
    return (tf.data.Dataset.from_tensor_slices(list(cache_paths))
            .map(lambda p: stack_frames(load_cached(p, [None, config.n_mels]), config),
                 num_parallel_calls=AUTOTUNE, deterministic=True))


MIX_CHUNK = 64
"""Vectors per chunk when mixing streams: sampling whole chunks is ~8x faster than single vectors."""


def training_vectors(cache_paths: Sequence[str], label: float, config: LogMelConfig,
                     seed: int, shuffle: bool = True) -> tf.data.Dataset:
    """Chunks of ``MIX_CHUNK`` ``(vector, label)`` pairs of the given clips, clips in random order when ``shuffle``."""
    files = tf.data.Dataset.from_tensor_slices(list(cache_paths))
    if shuffle:
        files = files.shuffle(len(cache_paths), seed=seed, reshuffle_each_iteration=True)

    def vectors_of(path):
        vectors = stack_frames(load_cached(path, [None, config.n_mels]), config)
        return vectors, tf.fill(tf.shape(vectors)[:1], tf.constant(label, tf.float32))

    return (files.map(vectors_of, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
            .unbatch().batch(MIX_CHUNK))


def mixed_training_dataset(normal_paths: Sequence[str], outlier_paths: Sequence[str], config: LogMelConfig,
                           batch_size: int, seed: int, shuffle: bool = True,
                           shuffle_buffer: int = 20_000) -> tf.data.Dataset:
    """Batches of ``(vectors, labels)``: the machine's clips (label 0) and outlier clips (label 1).

    Both streams are drawn from in proportion to their clip counts (``sample_from_datasets``),
    so one pass holds every vector of both once; the mixture is shuffled in a bounded buffer
    of ``shuffle_buffer`` vectors (20 000 x 640 float32 = 51 MB).
    """
    normals = training_vectors(normal_paths, 0.0, config, seed, shuffle)
    if outlier_paths:
        outliers = training_vectors(outlier_paths, 1.0, config, seed + 1, shuffle)
        share = len(normal_paths) / (len(normal_paths) + len(outlier_paths))
        dataset = tf.data.Dataset.sample_from_datasets([normals, outliers], weights=[share, 1 - share],
                                                       seed=seed, stop_on_empty_dataset=False)
    else:
        dataset = normals
    dataset = dataset.unbatch()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def vector_statistics(cache_paths: Sequence[str], config: LogMelConfig = LogMelConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and variance of the stacked vectors of some clips (streamed, float64 sums)."""
    total = np.zeros(config.vector_size)
    total_sq = np.zeros(config.vector_size)
    count = 0
    for vectors in clip_vectors_dataset(cache_paths, config).prefetch(AUTOTUNE):
        v = vectors.numpy().astype(np.float64)
        total += v.sum(axis=0)
        total_sq += (v ** 2).sum(axis=0)
        count += v.shape[0]
    if count == 0:
        raise AsdError("no training vectors to fit the normalisation on")
    mean = total / count
    return mean, np.maximum(total_sq / count - mean ** 2, 1e-8)
