"""Decode audio files into fixed-length mono float32 clips at the working sample rate.

WAV is read with soundfile (PCM 8/16/24/32-bit and float); FLAC and OGG go through
tensorflow-io, or soundfile where TensorFlow is not installed (the edge runtime, :mod:`asdkeras.edge`);
nothing here imports TensorFlow or scipy unless a FLAC or OGG file asks for it. Every clip comes
out as ``float32`` in [-1, 1], mono, ``SAMPLE_RATE`` Hz and
exactly ``CLIP_SAMPLES`` samples long, whatever the file held: multichannel input is reduced to
one channel (a chosen channel, or the mean), other rates are resampled with a polyphase filter,
and the length is cropped or zero-padded at the end.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from asdkeras.atomic import atomic_path
from asdkeras.errors import AsdError, tensorflow_reason
from asdkeras.resample import resample_poly

SAMPLE_RATE = 16_000
"""Working sample rate in Hz (DCASE 2022 Task 2)."""

CLIP_SECONDS = 10.0
"""Working clip length in seconds."""

CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)
"""Working clip length in samples (160000)."""

RESAMPLE_MARGIN_SECONDS = 0.1
"""Input read beyond the clip's end, so the resampling filter sees real samples at the crop point."""

MIN_SECONDS = 1.0
"""Clips shorter than this (in seconds, before padding) are refused as too short to score."""


@dataclass(frozen=True)
class AudioInfo:
    """What the file held before conversion: rate in Hz, channel count, length in samples."""

    sample_rate: int
    channels: int
    frames: int


RATE_RANGE = (1_000, 768_000)
"""Plausible sample rates in Hz; a header outside declares garbage (a 1 Hz header would have the
resampler turn a 10 s read into hours of audio)."""

MAX_CHANNELS = 256
"""More channels than this is a damaged header, not a microphone array."""


def read_file(path: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file into a ``(frames, channels)`` float32 array and its sample rate in Hz.

    Parameters
    ----------
    path : str
    max_seconds : float, optional
        Read at most this many seconds from the start (memory stays bounded whatever the header
        declares); None reads everything.

    Raises
    ------
    AsdError
        The file is missing, empty, corrupt, of an unsupported format, or declares an
        implausible sample rate or channel count.
    """
    if not os.path.isfile(path):
        raise AsdError(f"{path}: no such file; check the path or the dataset folder")
    if os.path.getsize(path) == 0:
        raise AsdError(f"{path}: the file is empty (0 bytes); re-copy or re-download it")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".flac", ".ogg") and _has_tensorflow_io():
        data, rate = _read_with_tensorflow_io(path)
        _check_header(path, rate, data.shape[1])
        if max_seconds is not None:
            data = data[:int(math.ceil(max_seconds * rate))]
    else:
        try:
            info = sf.info(path)
            _check_header(path, int(info.samplerate), int(info.channels))
            frames = -1 if max_seconds is None else int(math.ceil(max_seconds * info.samplerate))
            data, rate = sf.read(path, frames=frames, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError, ValueError, MemoryError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            expected = "a WAV file" if ext not in (".flac", ".ogg") else f"a {ext[1:].upper()} file"
            raise AsdError(
                f"{path}: cannot decode audio ({reason}); expected {expected}, re-copy or re-download it"
            ) from None
    if data.shape[0] == 0:
        raise AsdError(f"{path}: the file holds no audio samples (zero length); re-record or remove it")
    return data, int(rate)


def _check_header(path: str, rate: int, channels: int) -> None:
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise AsdError(f"{path}: declares a sample rate of {rate} Hz, outside {RATE_RANGE[0]}-{RATE_RANGE[1]} Hz; "
                       f"the header is damaged, re-copy or re-export the file")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AsdError(f"{path}: declares {channels} channels; the header is damaged, re-copy or re-export the file")


def _has_tensorflow_io() -> bool:
    """Whether tensorflow-io can be imported (not in the edge runtime's environment)."""
    import importlib.util

    return importlib.util.find_spec("tensorflow_io") is not None


def _read_with_tensorflow_io(path: str) -> tuple[np.ndarray, int]:
    import tensorflow as tf
    import tensorflow_io as tfio

    try:
        tensor = tfio.audio.AudioIOTensor(path)
        rate = int(tensor.rate.numpy())
        data = tensor.to_tensor()
        if data.dtype.is_integer:
            data = tf.cast(data, tf.float32) / float(2 ** (data.dtype.size * 8 - 1))
        return data.numpy().astype(np.float32), rate
    except Exception as exc:  # tensorflow-io raises several unrelated types
        reason = tensorflow_reason(str(exc)) if str(exc) else type(exc).__name__
        raise AsdError(f"{path}: cannot decode audio ({reason}); re-copy or re-download it") from None


def to_mono(data: np.ndarray, channel: int | None = None, path: str = "<array>") -> np.ndarray:
    """Reduce ``(frames, channels)`` audio to one channel.

    Parameters
    ----------
    data : np.ndarray, shape (frames, channels)
    channel : int or None
        Index of the channel to keep (MIMII's 8-microphone array: 0 is the reference
        microphone), or None to average all channels.
    """
    if data.ndim == 1:
        return data
    if channel is None:
        return data.mean(axis=1)
    if not 0 <= channel < data.shape[1]:
        raise AsdError(f"{path}: has {data.shape[1]} channel(s), cannot pick channel {channel}; "
                       f"pass a channel between 0 and {data.shape[1] - 1}, or none to downmix")
    return data[:, channel]


def resample(signal: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono signal from ``rate_in`` Hz to ``rate_out`` Hz (polyphase, anti-aliased)."""
    if rate_in == rate_out:
        return signal
    g = math.gcd(rate_in, rate_out)
    return resample_poly(signal, rate_out // g, rate_in // g).astype(np.float32)


def fit_length(signal: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Crop the end, or zero-pad it, to exactly ``length`` samples."""
    if signal.shape[0] >= length:
        return signal[:length]
    return np.pad(signal, (0, length - signal.shape[0]))


def load_clip(path: str, channel: int | None = None, sample_rate: int = SAMPLE_RATE,
              clip_samples: int = CLIP_SAMPLES, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Load one file as a mono float32 clip of ``clip_samples`` samples at ``sample_rate`` Hz.

    Parameters
    ----------
    path : str
        WAV, FLAC or OGG file.
    channel : int or None
        Channel to keep from multichannel files; None averages the channels.
    sample_rate : int
        Output rate in Hz; other rates are resampled.
    clip_samples : int
        Output length in samples; longer input is cropped, shorter is zero-padded.
    min_seconds : float
        Input shorter than this many seconds is refused with an :class:`AsdError`.
    """
    # Crop before resampling: only the input that becomes the clip is read (plus the filter's reach).
    mono = _read_mono(path, channel, sample_rate, clip_samples / sample_rate + RESAMPLE_MARGIN_SECONDS, min_seconds)
    return _finite(path, fit_length(mono, clip_samples).astype(np.float32))


def _read_mono(path: str, channel: int | None, sample_rate: int, max_seconds: float,
               min_seconds: float = 0.0) -> np.ndarray:
    """The first ``max_seconds`` of a file, one channel (or the mean), at ``sample_rate`` Hz."""
    data, rate = read_file(path, max_seconds=max_seconds)
    if data.shape[0] < min_seconds * rate:
        raise AsdError(f"{path}: only {data.shape[0] / rate:.2f} s of audio, at least {min_seconds:g} s "
                       f"needed; use a longer recording")
    return resample(to_mono(data, channel, path), rate, sample_rate)


def _finite(path: str, samples: np.ndarray) -> np.ndarray:
    """``samples``, or the file's one-line error when any is NaN or infinite."""
    if not np.all(np.isfinite(samples)):
        raise AsdError(f"{path}: holds NaN or infinite samples; re-record or remove it")
    return samples


FULL_SCALE = 0.999
"""Samples at or above this magnitude count as clipped."""

CLIPPED_SHARE = 0.001
"""A clip with more than this share of samples at full scale is reported as clipped."""


def level_problem(peak: float, full_scale_share: float) -> str | None:
    """What is wrong with a clip's level, for a note: silent, clipped, or None.

    Such clips are still scored: silence may be a stopped machine, clipping a loud fault.

    Parameters
    ----------
    peak : float
        Largest sample magnitude (1.0 = full scale).
    full_scale_share : float
        Share of samples at or above :data:`FULL_SCALE`.
    """
    if peak == 0:
        return "silent (every sample is zero)"
    if full_scale_share > CLIPPED_SHARE:
        return f"clipped ({full_scale_share:.1%} of samples at full scale)"
    return None


NAMED_LEVEL_PROBLEMS = 3
"""Silent or clipped clips named one per note; more are counted in one note."""


def level_notes(problems: list[str], total: int) -> list[str]:
    """Notes for the silent or clipped clips of a run (``problems``: "<path>: <problem>" each, of ``total``
    clips): one per clip, or one line counting them when there are more than :data:`NAMED_LEVEL_PROBLEMS`
    (a clipped recording chain clips every file: one line, not hundreds)."""
    if len(problems) > NAMED_LEVEL_PROBLEMS:
        return [f"{len(problems)} of {total} clips are silent or clipped, scored as they are; the first: {problems[0]}"]
    return [f"{problem}; scored as it is" for problem in problems]


def level_statistics(clip: np.ndarray) -> tuple[float, float]:
    """``(peak, full_scale_share)`` of a clip, for :func:`level_problem`."""
    magnitude = np.abs(clip)
    return float(magnitude.max(initial=0.0)), float(np.mean(magnitude >= FULL_SCALE)) if clip.size else 0.0


LONG_CLIP_MODES = ("crop", "max", "mean")
"""What a clip longer than the model's length gets: cropped to its start (the default, as
training clips are), or scored in overlapping windows whose scores are aggregated by max or mean."""

MAX_WINDOWED_SECONDS = 600.0
"""At most this much of a long recording is read for window scoring."""


def is_long(path: str, clip_samples: int = CLIP_SAMPLES, sample_rate: int = SAMPLE_RATE) -> bool:
    """Whether a file holds noticeably more (1 %) than one clip of audio; unreadable files are not long."""
    try:
        info = describe(path)
    except AsdError:
        return False
    return info.frames / info.sample_rate > 1.01 * clip_samples / sample_rate


def load_windows(path: str, channel: int | None = None, sample_rate: int = SAMPLE_RATE,
                 clip_samples: int = CLIP_SAMPLES, hop_samples: int | None = None) -> np.ndarray:
    """A long recording as overlapping clips ``(windows, clip_samples)`` float32.

    Windows start every ``hop_samples`` (default half a clip); the last one ends at the
    recording's end, so no part is left out. At most :data:`MAX_WINDOWED_SECONDS` are read.
    """
    mono = _finite(path, _read_mono(path, channel, sample_rate, MAX_WINDOWED_SECONDS).astype(np.float32))
    if mono.shape[0] <= clip_samples:
        return fit_length(mono, clip_samples)[np.newaxis]
    hop = hop_samples or clip_samples // 2
    starts = list(range(0, mono.shape[0] - clip_samples + 1, hop))
    if starts[-1] != mono.shape[0] - clip_samples:
        starts.append(mono.shape[0] - clip_samples)
    return np.stack([mono[start:start + clip_samples] for start in starts])


def long_clips_note(paths: list[str], mode: str, clip_samples: int = CLIP_SAMPLES,
                    sample_rate: int = SAMPLE_RATE) -> str | None:
    """One line saying how clips longer than ``clip_samples`` are scored (``mode``: a LONG_CLIP_MODES
    entry); None when no file is long."""
    count = sum(is_long(p, clip_samples, sample_rate) for p in paths)
    if not count:
        return None
    seconds = clip_samples / sample_rate
    return f"{count} clip(s) longer than {seconds:g} s: " + (
        f"cropped to the first {seconds:g} s (--long-clips max or mean scores overlapping windows)" if mode == "crop"
        else f"scored in overlapping {seconds:g} s windows, their {mode} taken")


def aggregate_windows(scores, mode: str) -> float:
    """One clip score from its windows' scores: ``max`` (a fault in any window counts) or ``mean``."""
    scores = np.asarray(scores, np.float64)
    return float(scores.max() if mode == "max" else scores.mean())


def describe(path: str) -> AudioInfo:
    """Rate, channel count and length of a file, read from its header where possible."""
    try:
        info = sf.info(path)
        return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))
    except (RuntimeError, sf.LibsndfileError):
        data, rate = read_file(path)
        return AudioInfo(rate, data.shape[1], data.shape[0])


def conversion_note(paths: list[str], sample_rate: int = SAMPLE_RATE, clip_samples: int = CLIP_SAMPLES,
                    channel: int | None = None) -> str | None:
    """One line saying how many files are converted on load (resampled, downmixed, cropped or padded).

    None when every file is already mono, at ``sample_rate`` and ``clip_samples`` long.
    """
    resampled, downmixed, refitted = {}, 0, 0
    for path in paths:
        try:
            info = describe(path)
        except AsdError:  # unreadable files are reported where they are decoded
            continue
        if info.frames < MIN_SECONDS * info.sample_rate:  # refused as too short where it is decoded
            continue
        if info.sample_rate != sample_rate:
            resampled[info.sample_rate] = resampled.get(info.sample_rate, 0) + 1
        downmixed += info.channels > 1
        refitted += round(info.frames * sample_rate / info.sample_rate) != clip_samples
    parts = [f"{n} resampled {rate} Hz -> {sample_rate} Hz" for rate, n in sorted(resampled.items())]
    parts += [f"{downmixed} multichannel, " + ("averaged to mono" if channel is None else f"channel {channel} kept")
              ] if downmixed else []
    parts += [f"{refitted} cropped or zero-padded to {clip_samples / sample_rate:g} s"] if refitted else []
    return f"{len(paths)} files read: " + "; ".join(parts) if parts else None


def write_wav_atomic(path: str, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono float signal in [-1, 1] as 16-bit PCM WAV, atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(signal, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
