"""Audio augmentation for the MobileNetV2 training set (audiomentations).

The report applies PitchShift, then TimeStretch, and trims or pads the result back to the clip
length. AddBackgroundNoise is available but off by default: the report found it hurt (the
model learned the added noise as the machine's sound).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np

from asdkeras.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_length
from asdkeras.errors import AsdError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges.

    Attributes
    ----------
    pitch_semitones : float
        PitchShift draws uniformly from [-pitch_semitones, +pitch_semitones] semitones.
    stretch_min, stretch_max : float
        TimeStretch rate range (1.0 = unchanged; > 1 faster).
    background_noise_dir : str or None
        Folder of noise recordings for AddBackgroundNoise; None leaves it off.
    noise_snr_db : tuple of float
        AddBackgroundNoise SNR range in dB.
    """

    pitch_semitones: float = 2.0
    stretch_min: float = 0.9
    stretch_max: float = 1.1
    background_noise_dir: str | None = None
    noise_snr_db: tuple = (10.0, 30.0)

    def __post_init__(self):
        if not 0 < self.pitch_semitones <= 12:
            raise AsdError(f"pitch range ±{self.pitch_semitones} semitones must lie in (0, 12]")
        if not 0.5 <= self.stretch_min <= self.stretch_max <= 2.0:
            raise AsdError(f"time-stretch range {self.stretch_min}..{self.stretch_max} must satisfy "
                           f"0.5 <= min <= max <= 2.0")


def make_augmenter(config: AugmentConfig = AugmentConfig()):
    """An audiomentations pipeline: PitchShift, then TimeStretch, then (optionally) AddBackgroundNoise."""
    from audiomentations import AddBackgroundNoise, Compose, PitchShift, TimeStretch

    steps = [PitchShift(min_semitones=-config.pitch_semitones, max_semitones=config.pitch_semitones, p=1.0),
             TimeStretch(min_rate=config.stretch_min, max_rate=config.stretch_max,
                         leave_length_unchanged=False, p=1.0)]
    if config.background_noise_dir:
        steps.append(AddBackgroundNoise(sounds_path=config.background_noise_dir, min_snr_db=config.noise_snr_db[0],
                                        max_snr_db=config.noise_snr_db[1], p=1.0))
    return Compose(steps)


def augment_clip(clip: np.ndarray, seed: int, augmenter=None, config: AugmentConfig = AugmentConfig(),
                 clip_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """One augmented copy of a clip, trimmed or zero-padded back to ``clip_samples`` samples.

    audiomentations draws from the global ``random`` and ``numpy.random`` streams, so both are
    seeded here: the same ``seed`` gives the same copy.
    """
    augmenter = augmenter or make_augmenter(config)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    out = augmenter(samples=clip.astype(np.float32), sample_rate=SAMPLE_RATE)
    return np.clip(fit_length(out, clip_samples), -1.0, 1.0).astype(np.float32)


_WORKER_AUGMENTER = {}


def write_augmented(job: tuple) -> str:
    """Worker job ``(source_path, target_path, seed, config, channel)``: augment one clip, write it atomically.

    An existing target is kept (it is a cache). Runs in pool workers; the augmenter is built once per process.
    """
    from asdkeras.audio import load_clip, write_wav_atomic

    source, target, seed, config, channel = job
    if not os.path.isfile(target):
        if config not in _WORKER_AUGMENTER:
            _WORKER_AUGMENTER[config] = make_augmenter(config)
        write_wav_atomic(target, augment_clip(load_clip(source, channel), seed, _WORKER_AUGMENTER[config], config))
    return target
