"""The feature cache: features computed once per clip and kept on disk, one float32 ``.npy`` per clip.

A clip's file is keyed by the audio file's path, size and modification time and by the feature
settings, so later epochs and reruns read the cache and never decode audio again; entries are
written atomically, so an interrupted run leaves no half file. Decoding: :mod:`asdkeras.decoding`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from asdkeras.atomic import atomic_path
from asdkeras.audio import CLIP_SAMPLES, FULL_SCALE, conversion_note, level_notes, level_problem, level_statistics
from asdkeras.decoding import AUTOTUNE, decode_one, waveform_dataset
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.features import ImageConfig, LogMelConfig, log_mel_spectrogram, spectrogram_image
from asdkeras.progress import Progress, no_progress

LOG = logging.getLogger("asdkeras")


def file_fingerprint(path: str) -> list:
    """What identifies a file's content for the caches: absolute path, size, modification time (ns)."""
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def _atomic_save_npy(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


@dataclass
class FeatureCache:
    """On-disk cache of per-clip features.

    Parameters
    ----------
    root : str
        Cache folder (created on demand).
    name : str
        Feature family, a sub-folder (``logmel``, ``image``...).
    describe : dict
        Everything the features depend on besides the file; part of every key.
    compute : callable
        Batched TF function from waveforms ``(batch, samples)`` to features ``(batch, ...)``.
    batch_size : int
        Clips per feature batch when filling the cache.
    channel : int, optional
        Channel kept from multichannel files; None averages them. Part of the key.
    """

    root: str
    name: str
    describe: dict
    compute: Callable[[tf.Tensor], tf.Tensor]
    batch_size: int = 16
    channel: int | None = None

    def path_for(self, audio_path: str) -> str:
        describe = self.describe if self.channel is None else {**self.describe, "channel": self.channel}
        key = json.dumps([file_fingerprint(audio_path), describe], sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()
        return os.path.join(self.root, self.name, digest[:2], f"{digest}.npy")

    def ensure(self, audio_paths: Sequence[str], progress: Progress = no_progress,
               skipped: SkippedFiles | None = None) -> list[str]:
        """Compute the features of every clip not yet cached; return the cache paths in input order.

        An unreadable file raises its one-line :class:`AsdError`, or, given ``skipped``, is
        recorded there and left out of the returned list (the rest are computed all the same).
        """
        skipped = SkippedFiles.or_strict(skipped)
        present = existing_files(audio_paths, skipped)
        cache_paths = {p: self.path_for(p) for p in present}
        missing = sorted({a: c for a, c in cache_paths.items() if not os.path.isfile(c)}.items())
        if missing:
            note = conversion_note([a for a, _ in missing], channel=self.channel)
            if note:
                LOG.info(note)
            for _, cache_path in missing:
                os.makedirs(os.path.dirname(cache_path), exist_ok=True)
            self._fill(missing, progress, skipped)
        return [cache_paths[p] for p in present if p not in skipped]

    def _fill(self, missing: list[tuple[str, str]], progress: Progress, skipped: SkippedFiles) -> None:
        """Batched through tf.data; after a failure the rest go one by one, so a bad file costs only itself.

        Silent and clipped clips are cached like the others, and named in a note.
        """
        audio = [a for a, _ in missing]

        def with_levels(waveforms):
            magnitude = tf.abs(waveforms)
            share = tf.reduce_mean(tf.cast(magnitude >= FULL_SCALE, tf.float32), axis=1)
            return self.compute(waveforms), tf.reduce_max(magnitude, axis=1), share

        dataset = (waveform_dataset(audio, channel=self.channel)
                   .batch(self.batch_size)
                   .map(with_levels, num_parallel_calls=AUTOTUNE, deterministic=True)
                   .prefetch(2))
        written, problems = 0, []

        def save(index: int, features: np.ndarray, peak: float, share: float) -> None:
            _atomic_save_npy(missing[index][1], features)
            problem = level_problem(peak, share)
            if problem:
                problems.append(f"{missing[index][0]}: {problem}")

        def write_batches():
            nonlocal written
            for features, peaks, shares in dataset:
                for clip_features, peak, share in zip(features.numpy(), peaks.numpy(), shares.numpy()):
                    save(written, clip_features, peak, share)
                    written += 1
                    yield written

        try:
            for _ in progress(write_batches(), len(missing)):
                pass
        except tf.errors.OpError:
            for index in progress(range(written, len(missing)), len(missing) - written):
                try:
                    waveform = decode_one(missing[index][0], self.channel)
                except AsdError as exc:
                    skipped.add(missing[index][0], str(exc))
                    continue
                save(index, self.compute(waveform[np.newaxis]).numpy()[0], *level_statistics(waveform))
        for note in level_notes(problems, len(missing)):
            LOG.info(note)


def existing_files(paths: Sequence[str], skipped: SkippedFiles) -> list[str]:
    """The paths that exist, in order; each missing one goes to ``skipped`` (which raises when strict)."""
    for path in paths:
        if not os.path.isfile(path):
            skipped.add(path, f"{path}: no such file; was the dataset moved while running?")
    return [p for p in paths if p not in skipped]


def logmel_cache(root: str, config: LogMelConfig = LogMelConfig(), channel: int | None = None) -> FeatureCache:
    """Cache of log-mel frames ``(frames, n_mels)`` float32 (313 x 128 for 10 s: 160 kB a clip)."""
    return FeatureCache(root, "logmel", {"clip_samples": CLIP_SAMPLES, **asdict(config)},
                        lambda waves: log_mel_spectrogram(waves, config), channel=channel)


def image_cache(root: str, config: ImageConfig = ImageConfig(), channel: int | None = None) -> FeatureCache:
    """Cache of spectrogram images as one uint8 channel ``(size, size)`` (100 kB a clip at 320 px).

    The three channels of a spectrogram image are identical and its pixels lie in [0, 255], so a
    rounded single channel stores it whole, as the report's saved pictures did.
    """
    return FeatureCache(root, "image", {"clip_samples": CLIP_SAMPLES, **asdict(config)},
                        lambda waves: tf.cast(tf.round(spectrogram_image(waves, config)[..., 0]), tf.uint8),
                        channel=channel)


_NPY_HEADER_LOCK = threading.Lock()


def _load_npy(path: bytes) -> np.ndarray:
    """One cached array. Called from tf.data's parallel threads.

    ``np.load`` parses the ``.npy`` header with ``ast.literal_eval``, and CPython 3.11 raises
    "SystemError: AST constructor recursion depth mismatch" when several threads parse at
    once; the header is read under a lock, the data outside it.
    """
    with open(path.decode(), "rb") as handle:
        with _NPY_HEADER_LOCK:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(handle)
        data = np.fromfile(handle, dtype=dtype, count=int(np.prod(shape)))
    return data.reshape(shape, order="F" if fortran else "C").astype(np.float32, copy=False)


def load_cached(path: tf.Tensor, shape: Sequence[int | None]) -> tf.Tensor:
    """Read one cached ``.npy`` inside a tf.data pipeline."""
    return tf.ensure_shape(tf.numpy_function(_load_npy, [path], tf.float32, stateful=False), shape)
