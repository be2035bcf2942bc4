"""tf.data pipelines: audio files -> cached features -> training vectors, with outliers mixed in.

Features are computed once per clip through a ``tf.data`` pipeline (parallel decoding, batched
TF feature ops) and kept in an on-disk cache, one float32 ``.npy`` file per clip keyed by the
file's path, size, modification time and the feature settings; later epochs and reruns read
the cache and never decode audio again. Training data stream from the cache file by file, so
the feature set is never held in memory.
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
import soundfile as sf
import tensorflow as tf

from asdkeras.atomic import atomic_path
from asdkeras.audio import (CLIP_SAMPLES, FULL_SCALE, MIN_SECONDS, SAMPLE_RATE, conversion_note, level_problem,
                            level_statistics, load_clip)
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.features import ImageConfig, LogMelConfig, log_mel_spectrogram, spectrogram_image, stack_frames
from asdkeras.progress import Progress, no_progress

AUTOTUNE = tf.data.AUTOTUNE
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
        for problem in problems:
            LOG.info(f"{problem}; scored as it is")


def existing_files(paths: Sequence[str], skipped: SkippedFiles) -> list[str]:
    """The paths that exist, in order; each missing one goes to ``skipped`` (which raises when strict)."""
    for path in paths:
        if not os.path.isfile(path):
            skipped.add(path, f"{path}: no such file; was the dataset moved while running?")
    return [p for p in paths if p not in skipped]


def decode_one(path: str, channel: int | None = None) -> np.ndarray:
    """One clip as :func:`waveform_dataset` decodes it, or the file's one-line :class:`AsdError`."""
    if decodes_in_graph(path, channel):
        try:
            return _decode_wav_in_graph(tf.constant(path)).numpy()
        except tf.errors.OpError:
            pass  # soundfile reads some files the in-graph decoder refuses, or says why it cannot
    return load_clip(path, channel)


def decodes_in_graph(path: str, channel: int | None = None) -> bool:
    """True for files TensorFlow decodes as they are: 16-bit PCM WAV at the working rate, long enough,
    with its channels averaged (``channel`` None).

    That is the DCASE format; ``tf.audio.decode_wav`` reads it inside the tf.data graph, in parallel
    and without Python. Anything else goes through :func:`asdkeras.audio.load_clip`.
    """
    if channel is not None:  # the in-graph decoder averages the channels; a choice of one is the loader's
        return False
    try:
        info = sf.info(path)
    except (RuntimeError, sf.LibsndfileError):
        return False
    return (info.format == "WAV" and info.subtype == "PCM_16" and info.samplerate == SAMPLE_RATE
            and info.frames >= MIN_SECONDS * SAMPLE_RATE and _tensorflow_reads_riff(path))


_PADDING_CHUNKS = {b"JUNK", b"bext", b"iXML", b"qlty", b"mext", b"levl", b"link", b"axml"}
"""Chunks ``tf.audio.decode_wav`` accepts before "fmt " (tensorflow/core/lib/wav/wav_io.cc)."""


def _tensorflow_reads_riff(path: str) -> bool:
    """Whether the RIFF chunk walk of ``tf.audio.decode_wav`` gets through the file.

    It takes padding chunks before "fmt ", then walks every chunk to the end of the file with no
    word alignment, one data chunk, each chunk inside the file. Bytes appended after the last
    chunk (a tag, a copy error) fail that walk, and TensorFlow's message then holds the raw
    bytes, which Python cannot even decode as UTF-8; such files go to soundfile instead.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if handle.read(4) != b"RIFF" or len(handle.read(4)) < 4 or handle.read(4) != b"WAVE":
            return False
        offset, seen_format, seen_data = 12, False, False
        while offset < size:
            header = handle.read(8)
            if len(header) < 8:
                return False
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if not seen_format and chunk_id != b"fmt " and chunk_id not in _PADDING_CHUNKS:
                return False
            if chunk_size > 2 ** 31 - 1 or offset + 8 + chunk_size > size or (chunk_id == b"data" and seen_data):
                return False
            seen_format |= chunk_id == b"fmt "
            seen_data |= chunk_id == b"data"
            offset += 8 + chunk_size
            handle.seek(offset)
    return seen_format and seen_data


def _decode_wav_in_graph(path: tf.Tensor) -> tf.Tensor:
    """Mono float32 clip of ``CLIP_SAMPLES`` from a 16 kHz PCM-16 WAV: channels averaged, end cropped or zero-padded."""
    audio, _ = tf.audio.decode_wav(tf.io.read_file(path))
    mono = tf.reduce_mean(audio, axis=1)[:CLIP_SAMPLES]
    return tf.pad(mono, [[0, CLIP_SAMPLES - tf.shape(mono)[0]]])


def waveform_dataset(paths: Sequence[str], failures: list[str] | None = None,
                     channel: int | None = None) -> tf.data.Dataset:
    """Decoded clips ``(CLIP_SAMPLES,)`` float32, in order, decoded in parallel.

    Files in the DCASE format are decoded by TensorFlow (channels averaged); others, and every
    file when a ``channel`` is picked, by the Python loader (resampling, FLAC/OGG, other sample
    formats, channel choice), whose one-line error messages are appended to ``failures``.
    """
    failures = [] if failures is None else failures

    def decode_in_python(path: bytes) -> np.ndarray:
        try:
            return load_clip(path.decode(), channel)
        except AsdError as exc:
            failures.append(str(exc))
            raise

    def decode(path, in_graph):
        clip = tf.cond(in_graph, lambda: _decode_wav_in_graph(path),
                       lambda: tf.numpy_function(decode_in_python, [path], tf.float32, stateful=False))
        return tf.ensure_shape(clip, [CLIP_SAMPLES])

    flags = [decodes_in_graph(p, channel) for p in paths]
    return (tf.data.Dataset.from_tensor_slices((list(paths), flags))
            .map(decode, num_parallel_calls=AUTOTUNE, deterministic=True))


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
    import multiprocessing

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
    workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
    if todo and workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in progress(pool.imap_unordered(write_augmented, todo, chunksize=2), len(todo)):
                pass
    elif todo:
        for _ in progress(map(write_augmented, todo), len(todo)):
            pass
    return [job[1] for job in jobs]


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
