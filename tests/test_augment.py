import os

import numpy as np
import pytest

from asdkeras.augment import AugmentConfig, augment_clip, make_augmenter
from asdkeras.audio import SAMPLE_RATE, write_wav_atomic
from asdkeras.errors import AsdError
from asdkeras.pipeline import augmented_clips

T = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
TONE = (0.3 * np.sin(2 * np.pi * 1000 * T)).astype(np.float32)


def _peak_hz(x):
    return np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(np.abs(np.fft.rfft(x)))]


def test_pitch_shift_then_time_stretch_back_to_clip_length():
    config = AugmentConfig(pitch_semitones=3.0, stretch_min=0.8, stretch_max=1.25)
    out = augment_clip(TONE, seed=5, config=config, clip_samples=TONE.size)
    assert out.shape == TONE.shape and out.dtype == np.float32
    ratio = _peak_hz(out) / 1000.0
    assert 2 ** (-3 / 12) - 0.01 <= ratio <= 2 ** (3 / 12) + 0.01 and abs(ratio - 1) > 1e-3


def test_augmentation_is_deterministic_per_seed():
    augmenter = make_augmenter()
    a = augment_clip(TONE, 11, augmenter, clip_samples=TONE.size)
    np.testing.assert_array_equal(a, augment_clip(TONE, 11, augmenter, clip_samples=TONE.size))
    assert not np.allclose(a, augment_clip(TONE, 12, augmenter, clip_samples=TONE.size))


def test_background_noise_is_off_by_default_and_optional(tmp_path):
    names = [type(t).__name__ for t in make_augmenter().transforms]
    assert names == ["PitchShift", "TimeStretch"]
    write_wav_atomic(str(tmp_path / "noise.wav"), np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32))
    with_noise = make_augmenter(AugmentConfig(background_noise_dir=str(tmp_path)))
    assert [type(t).__name__ for t in with_noise.transforms][-1] == "AddBackgroundNoise"


@pytest.mark.parametrize("kwargs", [dict(pitch_semitones=0), dict(stretch_min=1.2, stretch_max=1.1),
                                    dict(stretch_min=0.1)])
def test_invalid_ranges_are_refused_at_construction(kwargs):
    with pytest.raises(AsdError):
        AugmentConfig(**kwargs)


def test_augmented_clips_are_cached_and_reused(tmp_path, tiny_dataset):
    sources = sorted(os.path.join(tiny_dataset, "dev_data", "valve", "train", n)
                     for n in os.listdir(os.path.join(tiny_dataset, "dev_data", "valve", "train")))[:2]
    paths = augmented_clips(sources, 3, AugmentConfig(), str(tmp_path), seed=0, workers=1)
    assert len(paths) == 3 and all(os.path.isfile(p) for p in paths)
    stamps = [os.stat(p).st_mtime_ns for p in paths]
    again = augmented_clips(sources, 3, AugmentConfig(), str(tmp_path), seed=0, workers=1)
    assert again == paths and [os.stat(p).st_mtime_ns for p in again] == stamps
    other_seed = augmented_clips(sources, 1, AugmentConfig(), str(tmp_path), seed=1, workers=1)
    assert os.path.dirname(other_seed[0]) != os.path.dirname(paths[0])


def test_augmenting_in_two_processes_writes_what_one_writes(tmp_path, tiny_dataset):
    import soundfile as sf

    sources = sorted(os.path.join(tiny_dataset, "dev_data", "valve", "train", n)
                     for n in os.listdir(os.path.join(tiny_dataset, "dev_data", "valve", "train")))[:2]
    alone = augmented_clips(sources, 3, AugmentConfig(), str(tmp_path / "one"), seed=0, workers=1)
    pooled = augmented_clips(sources, 3, AugmentConfig(), str(tmp_path / "two"), seed=0, workers=2)
    assert [os.path.basename(p) for p in pooled] == [os.path.basename(p) for p in alone]
    for one, two in zip(alone, pooled):
        assert (sf.read(one)[0] == sf.read(two)[0]).all()
