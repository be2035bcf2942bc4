"""The pseudo-anomaly battery: each kind alters a clip as its physics says, figures and the choice rule."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asdkeras.audio import SAMPLE_RATE
from asdkeras.battery import (BATTERY, FAMILIES, NOISE_MARGIN, TIE, Context, PseudoAnomaly, altered_clips, auc,
                              battery_figures, choose, dominant_frequency, lead_errors, strongest_event)

SECONDS = 2
N = SECONDS * SAMPLE_RATE


def _machine_clip(seed: int = 0) -> np.ndarray:
    """A 200 Hz hum with harmonics, noise and a click every 0.5 s: tones, a floor and events to work on."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / SAMPLE_RATE
    clip = 0.1 * np.sin(2 * np.pi * 200 * t) + 0.03 * np.sin(2 * np.pi * 400 * t) + 0.01 * rng.standard_normal(N)
    for start in range(2000, N, SAMPLE_RATE // 2):
        clip[start:start + 160] += 0.3 * np.exp(-np.arange(160) / 30) * np.sin(2 * np.pi * 2500 * np.arange(160) / SAMPLE_RATE)
    return clip.astype(np.float32)


def _kind(name: str) -> PseudoAnomaly:
    return next(p for p in BATTERY if p.name == name)


def _alter(name: str, clip: np.ndarray, context: Context = Context()) -> np.ndarray:
    return _kind(name).alter(clip, np.random.default_rng(1), context)


def _rms(x):
    return np.sqrt(np.mean(np.square(x, dtype=np.float64)))


def test_every_family_has_kinds_and_names_are_unique():
    assert {p.family for p in BATTERY} == set(FAMILIES)
    assert len({p.name for p in BATTERY}) == len(BATTERY)
    with pytest.raises(ValueError, match="Received: family='noise'"):
        PseudoAnomaly("x", "noise", "", lambda clip, rng, context: clip)


def test_other_machine_is_added_at_its_level():
    clip = _machine_clip()
    other = np.random.default_rng(5).normal(0, 0.5, N).astype(np.float32)
    added = _alter("other_machine_10dB", clip, Context(other[np.newaxis])) - clip
    np.testing.assert_allclose(20 * np.log10(_rms(clip) / _rms(added)), 10.0, atol=1e-3)


def test_transients_change_few_frames_and_the_peak_not_the_level():
    clip = _machine_clip()
    for name in ("impact_single", "impact_repeated", "own_event_x5"):
        changed = np.abs(_alter(name, clip) - clip).reshape(-1, 500).max(axis=1) > 1e-6
        assert changed.mean() < 0.3, name  # short events (5 resonances of up to 60 ms in 2 s), not a steady change
    impact = _alter("impact_single", clip)
    assert np.abs(impact).max() > 2 * np.abs(clip).max() * 0.9 and abs(_rms(impact) / _rms(clip) - 1) < 0.3


def test_strongest_event_finds_the_click():
    clip = _machine_clip()
    event = strongest_event(clip)
    assert np.abs(event).max() > 0.25  # the clicks peak near 0.3, the hum at 0.13


def test_pitch_shift_moves_the_dominant_tone():
    clip = _machine_clip()
    assert dominant_frequency(clip) == pytest.approx(200, abs=4)
    shifted = dominant_frequency(_alter("pitch_shift", clip))
    assert abs(shifted - 200) > 2 and abs(shifted - 200) < 8  # 0.3 semitone = 1.7 % = 3.5 Hz


def test_tonal_and_level_kinds():
    clip = _machine_clip()
    notched = _alter("removed_harmonic", clip)
    spectrum = lambda x: np.abs(np.fft.rfft(x))[int(200 * SECONDS)]  # noqa: E731
    assert spectrum(notched) < 0.2 * spectrum(clip)
    np.testing.assert_allclose(abs(20 * np.log10(_rms(_alter("gain_3dB", clip)) / _rms(clip))), 3.0, atol=1e-3)
    modulated = _alter("amplitude_modulation", clip)
    envelope = np.abs(modulated).reshape(-1, 400).max(axis=1) / (np.abs(clip).reshape(-1, 400).max(axis=1) + 1e-9)
    assert envelope.max() > 1.2 and envelope.min() < 0.8


def test_altered_clips_cover_every_kind_deterministically():
    normals = np.stack([_machine_clip(0), _machine_clip(1)])
    first = dict(altered_clips(normals, seed=3))
    again = dict(altered_clips(normals, seed=3))
    assert list(first) == [p.name for p in BATTERY]
    for name, clips in first.items():
        assert clips.shape == normals.shape and clips.dtype == np.float32 and np.abs(clips).max() <= 1
        np.testing.assert_array_equal(clips, again[name])
        assert not np.array_equal(clips, normals), name


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["zeros", "dc", "full_scale", "tiny"]), st.integers(0, 2 ** 16))
def test_hostile_clips_give_finite_altered_clips(shape, seed):
    rng = np.random.default_rng(seed)
    clip = {"zeros": np.zeros(N), "dc": np.full(N, 0.5), "full_scale": np.sign(rng.standard_normal(N)),
            "tiny": 1e-9 * rng.standard_normal(N)}[shape].astype(np.float32)
    for name, clips in altered_clips(clip[np.newaxis], seed=seed):
        assert np.isfinite(clips).all(), name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-3, 3) | st.floats(-1e6, 1e6) | st.just(-np.inf), min_size=1, max_size=30),
       st.lists(st.integers(-3, 3) | st.floats(-1e6, 1e6) | st.just(-np.inf), min_size=1, max_size=30))
def test_auc_is_sklearns_with_ties_and_minus_infinity(normal, anomalous):
    from sklearn.metrics import roc_auc_score

    floor = -1e7  # what battery_figures does to -inf before the AUC; auc itself takes -inf too
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    expected = roc_auc_score(labels, np.maximum(np.r_[normal, anomalous], floor))
    assert auc(np.array(normal, float), np.array(anomalous, float)) == pytest.approx(expected, abs=1e-12)


def test_figures_average_kinds_within_families_and_families_equally():
    normal = np.arange(10.0)
    altered = {p.name: normal + (100 if p.family == "transient" else 0) for p in BATTERY}
    figures = battery_figures(normal, altered)
    assert figures["families"]["transient"] == 1.0 and figures["families"]["level"] == 0.5
    assert figures["mean"] == pytest.approx((1.0 + 0.5 * 3) / 4) and figures["worst"] in FAMILIES
    nan = {**altered, "gain_3dB": np.full(10, np.nan)}
    assert battery_figures(normal, nan)["kinds"]["gain_3dB"] <= 0.5  # a failed score counts as least anomalous


def test_choose_takes_the_best_mean_and_the_first_on_ties():
    assert choose({"a": {"mean": 0.7}, "b": {"mean": 0.9}})[0] == "b"
    chosen, why = choose({"a": {"mean": 0.9 - TIE / 2}, "b": {"mean": 0.9}})
    assert chosen == "a" and "tied" in why


def test_a_lead_within_the_batterys_sampling_error_goes_to_the_simpler_candidate():
    figures = {"gmm": {"mean": 0.965}, "fuse-mean": {"mean": 0.980}}
    chosen, why = choose(figures, {"gmm": 0.032})  # lead 0.015 < 0.5 x 0.032
    assert chosen == "gmm" and "sampling error (0.032)" in why and "fuse-mean leads by 0.015" in why
    assert choose(figures, {"gmm": 0.016})[0] == "fuse-mean"  # 0.015 > 0.5 x 0.016: more than noise
    assert choose(figures)[0] == "fuse-mean"  # without errors: the fixed tie only
    assert choose({"gmm": {"mean": 0.9 - TIE / 2}, "fuse": {"mean": 0.9}}, {"gmm": 0.0})[0] == "gmm"  # TIE stays a floor


def test_lead_errors_resample_the_normal_clips_with_their_altered_copies_paired():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=40)
    altered = {p.name: normal + rng.normal(1.0, 1.0, size=40) for p in BATTERY}
    other = {p.name: v + rng.normal(0, 0.5, size=40) for p, v in zip(BATTERY, altered.values())}
    scores = {"best": (normal, altered), "same": (normal.copy(), dict(altered)), "other": (normal, other)}
    errors = lead_errors(scores, "best", resamplings=50)
    assert set(errors) == {"same", "other"}
    assert errors["same"] == 0.0  # the same clips for both: no difference in any resampling
    assert 0.0 < errors["other"] < 0.1
    assert lead_errors(scores, "best", resamplings=50) == errors  # seeded: the same error every fit
    assert NOISE_MARGIN == 0.5
