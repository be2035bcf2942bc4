"""Audio files -> clips inside tf.data: decoded in the graph where TensorFlow reads the file as it is,
by the Python loader (:func:`asdkeras.audio.load_clip`) otherwise.

DCASE's own format (16-bit PCM WAV at 16 kHz) is decoded by ``tf.audio.decode_wav`` inside the
graph, in parallel and without Python; anything else (other rates, FLAC/OGG, other sample
formats, a chosen channel, a RIFF walk TensorFlow would fail) goes through the loader, whose
one-line errors name the file.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import soundfile as sf
import tensorflow as tf

from asdkeras.audio import CLIP_SAMPLES, MIN_SECONDS, SAMPLE_RATE, load_clip
from asdkeras.errors import AsdError

AUTOTUNE = tf.data.AUTOTUNE


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
