"""Polyphase resampling in numpy alone, sample for sample what ``scipy.signal.resample_poly`` gives.

The edge runtime (:mod:`asdkeras.edge`) carries numpy, soundfile and LiteRT only, and must
convert a clip exactly as the training and ``score`` paths do; so every path resamples here.
The filter is scipy's default: a Kaiser-windowed sinc (beta 5.0) of ``20 * max(up, down) + 1``
taps, cutoff at the lower Nyquist frequency, gain ``up``, zero padding outside the signal, and
the output delayed so that its samples sit on the input's time axis.
"""

from __future__ import annotations

import math

import numpy as np

KAISER_BETA = 5.0
"""Kaiser window shape of the anti-aliasing filter (scipy's default for ``resample_poly``)."""

HALF_LENGTH_PER_RATE = 10
"""Filter half-length in units of ``max(up, down)`` taps (scipy's default)."""

OUTPUT_BLOCK = 65_536
"""Output samples computed per block (bounds the temporary taps-by-outputs array)."""


def lowpass_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR filter of a rate change by ``up / down``, gain ``up`` (float64 taps)."""
    rate = max(up, down)
    taps = 2 * HALF_LENGTH_PER_RATE * rate + 1
    cutoff = 1.0 / rate  # relative to the Nyquist frequency
    centred = np.arange(taps) - (taps - 1) / 2
    h = cutoff * np.sinc(cutoff * centred) * np.kaiser(taps, KAISER_BETA)
    return h / h.sum() * up


def resample_poly(signal: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample a 1-D signal by the rational factor ``up / down`` (float64 out).

    Parameters
    ----------
    signal : np.ndarray, shape (samples,)
    up, down : int
        Positive integers; the output rate is ``rate * up / down`` Hz.

    Returns
    -------
    np.ndarray, shape (ceil(samples * up / down),)
    """
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be positive integers. Received: up={up}, down={down}")
    g = math.gcd(up, down)
    up, down = up // g, down // g
    x = np.asarray(signal, np.float64)
    if up == down == 1:
        return x.copy()
    n_out = -(-x.shape[0] * up // down)
    h = lowpass_filter(up, down)
    half = (h.shape[0] - 1) // 2
    pre_pad = down - half % down
    h = np.concatenate([np.zeros(pre_pad), h])
    delay = (half + pre_pad) // down  # outputs of the full convolution dropped at the start
    # Polyphase: output n sits at upsampled position m = (n + delay) * down; its taps are
    # h[m % up + j * up] against x[m // up - j], j = 0, 1, ...
    per_phase = -(-h.shape[0] // up)
    phases = np.zeros(per_phase * up)
    phases[:h.shape[0]] = h
    phases = phases.reshape(per_phase, up).T  # (up, per_phase): phases[p, j] = h[p + j * up]
    padded = np.concatenate([np.zeros(per_phase), x, np.zeros(per_phase)])
    out = np.empty(n_out)
    lags = np.arange(per_phase)
    for start in range(0, n_out, OUTPUT_BLOCK):
        m = (np.arange(start, min(start + OUTPUT_BLOCK, n_out)) + delay) * down
        windows = padded[(m // up)[:, None] - lags[None, :] + per_phase]
        out[start:start + m.shape[0]] = np.einsum("nj,nj->n", phases[m % up], windows)
    return out
