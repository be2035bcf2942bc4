"""Feature front-ends in TensorFlow ops: log-mel frame vectors and spectrogram images.

Both functions take a float32 waveform of shape ``(samples,)`` or ``(batch, samples)`` in
[-1, 1] at ``audio.SAMPLE_RATE`` (16 kHz) and run unchanged in ``tf.data``, in eager code, and inside a model exported
to TFLite (``tf.signal.stft``, the mel matrix and the image resize are TFLite builtins).
librosa is the reference these are tested against, not the hot path.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

import tensorflow as tf

from asdkeras.audio import SAMPLE_RATE
from asdkeras.feature_settings import ImageConfig, LogMelConfig  # noqa: F401 (the front-ends' settings)

FIXED_POINT_BITS = 24
"""Fractional bits of the int32 form in which :func:`pinned_constant` stores a constant in [-1, 1].

24, because the step 2^-24 must itself survive float16 conversion (it is float16's smallest
subnormal, exactly representable); steps of 6e-8 keep the window's leakage floor near -120 dB,
where float16's ~5e-4 errors near 1 put it near -60 dB."""


def pinned_constant(make: Callable[[], tf.Tensor], anchor: tf.Tensor | None) -> tf.Tensor:
    """The constant ``make()`` as it is, or (given an ``anchor``) rebuilt at run time from an int32 copy.

    A TFLite converter rewrites float constants: float16 quantisation stores them as float16
    (a Hann window at ~1e-3 precision leaks enough to move quiet mel bands by up to 18 dB) and
    dynamic-range quantisation turns the mel product into a hybrid int8 kernel that quantises
    the power spectrum (clip scores of 21 instead of 0.36). Neither touches an int32 constant
    nor an operand computed from the input: the value is kept as int32 fixed point
    (:data:`FIXED_POINT_BITS`; the window and the mel weights all lie in [0, 1]) plus an
    integer zero computed from ``anchor``, so no constant folding turns it back into a float
    constant. The cost per call: an integer add, a cast and a product over the constant.
    """
    if anchor is None:
        return make()
    scale = float(2 ** FIXED_POINT_BITS)
    with tf.init_scope():  # evaluate eagerly, also while a tf.function is being traced
        fixed = np.round(make().numpy().astype(np.float64) * scale).astype(np.int32)
    zero = tf.cast(0.0 * tf.reshape(anchor, [-1])[0], tf.int32)
    return tf.cast(tf.constant(fixed) + zero, tf.float32) * (1.0 / scale)


def frames(waveform: tf.Tensor, frame_length: int, hop_length: int) -> tf.Tensor:
    """Frames ``(..., count, frame_length)`` of ``(..., samples)``, ``count = 1 + (samples - frame_length) // hop``.

    Where the hop divides the frame length (50 % overlap here) the frames are whole blocks of
    ``hop_length`` samples side by side: a reshape and a concatenation, which TFLite runs in a
    sixth of the time of ``tf.signal.frame``'s gather.
    """
    samples = waveform.shape[-1]
    if samples is None or frame_length % hop_length:
        return tf.signal.frame(waveform, frame_length, hop_length)
    parts, blocks = frame_length // hop_length, samples // hop_length
    count = blocks - parts + 1
    shape = tf.concat([tf.shape(waveform)[:-1], [blocks, hop_length]], axis=0)
    blocked = tf.reshape(waveform[..., :blocks * hop_length], shape)
    return tf.concat([blocked[..., i:i + count, :] for i in range(parts)], axis=-1)


def _power_spectrogram(waveform: tf.Tensor, n_fft: int, hop_length: int, center: bool,
                       pin: bool = False) -> tf.Tensor:
    """|STFT|^2 with a periodic Hann window, shape ``(..., frames, n_fft // 2 + 1)``.

    Computed as real^2 + imaginary^2 (not |X| squared: no square root). ``pin``: the window is a
    :func:`pinned_constant` (for TFLite export).
    """
    if center:
        pad = n_fft // 2
        rank = len(waveform.shape)
        paddings = [[0, 0]] * (rank - 1) + [[pad, pad]]
        waveform = tf.pad(waveform, paddings, mode="REFLECT")
    window = pinned_constant(lambda: tf.signal.hann_window(n_fft, dtype=tf.float32), waveform if pin else None)
    spectrum = tf.signal.rfft(frames(waveform, n_fft, hop_length) * window, [n_fft])
    return tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))


def _floored_log(x: tf.Tensor, floor: float) -> tf.Tensor:
    """``log(max(x, floor))`` computed as ``max(log(x), log(floor))`` (the same, since log is monotone).

    The floor enters as its logarithm (-23.0 for 1e-10), which float16 holds: a float16 TFLite
    model stores constants as float16, where 1e-10 itself flushes to 0 and log(0) = -inf.
    """
    return tf.maximum(tf.math.log(x), math.log(floor))


def mel_matrix(config: LogMelConfig = LogMelConfig()) -> tf.Tensor:
    """The ``(n_fft // 2 + 1, n_mels)`` HTK mel filterbank, 0 Hz to Nyquist, unnormalised."""
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=config.n_mels, num_spectrogram_bins=config.n_fft // 2 + 1,
        sample_rate=SAMPLE_RATE, lower_edge_hertz=0.0, upper_edge_hertz=SAMPLE_RATE / 2)


def log_mel_spectrogram(waveform: tf.Tensor, config: LogMelConfig = LogMelConfig(), pin: bool = False) -> tf.Tensor:
    """Log-mel power in dB, shape ``(..., frames, n_mels)``; frames centred, reflect-padded.

    ``pin``: window and mel matrix are :func:`pinned_constant` s, so a quantised TFLite model
    keeps its front-end exact.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    power = _power_spectrogram(waveform, config.n_fft, config.hop_length, center=True, pin=pin)
    mel = tf.tensordot(power, pinned_constant(lambda: mel_matrix(config), waveform if pin else None), axes=1)
    return (10.0 / math.log(10.0)) * _floored_log(mel, config.amin)


def stack_frames(logmel: tf.Tensor, config: LogMelConfig = LogMelConfig()) -> tf.Tensor:
    """Stack ``n_frames`` consecutive frames of ``(..., frames, n_mels)`` into ``(..., vectors, n_mels * n_frames)``.

    Vector ``t`` concatenates frames ``t .. t + n_frames - 1``, in the DCASE baseline's order: the
    ``n_frames`` shifted slices side by side (strided slices and a concatenation, TFLite builtins;
    the autoencoder's scoring model runs this same function).
    """
    frames = logmel.shape[-2]
    count = frames - config.n_frames + 1 if frames is not None else tf.shape(logmel)[-2] - config.n_frames + 1
    return tf.concat([logmel[..., i:i + count, :] for i in range(config.n_frames)], axis=-1)


def log_mel_vectors(waveform: tf.Tensor, config: LogMelConfig = LogMelConfig()) -> tf.Tensor:
    """Stacked log-mel vectors, shape ``(..., vectors, n_mels * n_frames)`` (309 x 640 for 10 s)."""
    return stack_frames(log_mel_spectrogram(waveform, config), config)


def spectrogram_image(waveform: tf.Tensor, config: ImageConfig = ImageConfig(), pin: bool = False) -> tf.Tensor:
    """STFT magnitude image with integer values in [0, 255], shape ``(..., size, size, 3)``, low frequencies at the bottom.

    Each clip is scaled to its own loudest bin (0 dB -> 255) with ``top_db`` below it mapped to 0,
    as a saved spectrogram picture would be, resized bilinearly, rounded to whole pixel values
    (so the uint8 image cache, Keras scoring and the TFLite waveform model see the same input)
    and repeated on 3 channels.
    ``pin``: the window is a :func:`pinned_constant` (for TFLite export).
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    magnitude = tf.sqrt(_power_spectrogram(waveform, config.window, config.hop_length, center=False, pin=pin))
    db = (20.0 / math.log(10.0)) * _floored_log(magnitude, 1e-5)
    peak = tf.reduce_max(db, axis=[-2, -1], keepdims=True)
    db = tf.maximum(db - peak, -config.top_db)
    pixels = (db + config.top_db) * (255.0 / config.top_db)
    image = tf.reverse(tf.linalg.matrix_transpose(pixels), axis=[-2])[..., tf.newaxis]  # (..., freq, time, 1)
    image = tf.round(tf.image.resize(image, (config.image_size, config.image_size), method="bilinear"))
    return tf.tile(image, [1] * (len(image.shape) - 1) + [3])
