"""Clips longer than the model's 10 s: cropped, or scored in overlapping windows aggregated by max or mean."""

import os

import numpy as np
import pytest
import soundfile as sf

from asdkeras.audio import aggregate_windows, is_long, load_clip, load_windows
from asdkeras.data.layout import scan_split
from asdkeras.fit import fit_detector, make_config

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")


def test_windows_cover_the_whole_recording_and_the_last_ends_with_it(tmp_path):
    signal = np.linspace(-0.5, 0.5, 16000 * 25, dtype=np.float32)
    sf.write(tmp_path / "long.wav", signal, 16000, subtype="FLOAT")
    windows = load_windows(str(tmp_path / "long.wav"))
    assert windows.shape == (4, 160000)  # starts at 0, 5, 10 and 15 s
    np.testing.assert_allclose(windows[-1], signal[-160000:])
    np.testing.assert_allclose(windows[1], signal[80000:240000])
    assert is_long(str(tmp_path / "long.wav")) and aggregate_windows([1, 3, 2], "max") == 3
    assert aggregate_windows([1, 3, 2], "mean") == 2
    sf.write(tmp_path / "short.wav", signal[:160000], 16000, subtype="FLOAT")
    assert not is_long(str(tmp_path / "short.wav")) and load_windows(str(tmp_path / "short.wav")).shape == (1, 160000)


def test_a_fault_late_in_a_long_recording_counts_with_windows_not_with_crop(tiny_dataset, tmp_path):
    config = make_config("gmm", machine="gearbox", data_dir=tiny_dataset, cache_dir=str(tmp_path / "cache"),
                         models_dir=str(tmp_path / "models"))
    detector = fit_detector("gmm", config)
    test = scan_split(tiny_dataset, "gearbox", "test")
    normal = load_clip(next(r.path for r in test if r.label == "normal"))
    anomaly = load_clip(next(r.path for r in test if r.label == "anomaly"))
    long_path = tmp_path / "normal_then_fault.wav"
    sf.write(long_path, np.concatenate([normal, anomaly, normal[:80000]]), 16000, subtype="FLOAT")
    crop, = detector.score_files([str(long_path)], str(tmp_path / "cache"))
    assert crop == pytest.approx(detector.score_waveforms(normal[np.newaxis])[0], rel=1e-3, abs=1e-3)
    window_scores = detector.score_waveforms(load_windows(str(long_path)))
    worst, = detector.score_files([str(long_path)], str(tmp_path / "cache"), long_clips="max")
    average, = detector.score_files([str(long_path)], str(tmp_path / "cache"), long_clips="mean")
    assert worst == pytest.approx(window_scores.max()) and average == pytest.approx(window_scores.mean())
    assert worst >= average and worst > crop
