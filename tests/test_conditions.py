"""Scores judged per operating condition: statistics, assignment, and the Keras graph against NumPy."""

import keras
import numpy as np
import pytest

from asdkeras.models.autoencoder import autoencoder_descriptor
from asdkeras.models.conditions import (Conditions, condition_statistics, conditioned_parts,
                                        conditioned_scoring_model, describe, fit_conditions, group_of)
from asdkeras.models.mobilenet import ImageSpectrum, mobilenet_descriptor
from asdkeras.splits import split_validation


def test_group_of_names_section_and_domain():
    assert group_of(["00", "01", "01"], ["source", "target", "unknown"]).tolist() == \
        ["00/source", "01/target", "01/source"]


def test_every_clip_counts_and_the_trained_on_ones_are_corrected_by_the_held_out_ones():
    rng = np.random.default_rng(1)
    sections = ["00"] * 70
    domains = ["source"] * 60 + ["target"] * 10
    held = np.array([False] * 40 + [True] * 20 + [False] * 9 + [True])
    # an overfitting network: trained-on clips score 0.2 lower and twice as tight as held-out ones
    raw = np.concatenate([rng.normal(0.8, 0.05, 40), rng.normal(1.0, 0.1, 20), rng.normal(2.0, 0.05, 9), [2.2]])
    stats, summary = condition_statistics(raw, sections, domains, held)
    source = summary["corrections"]["source"]
    # a gap of many standard errors is kept nearly whole (shrunk by its sampling error)
    assert source["gap"] == pytest.approx(raw[40:60].mean() - raw[:40].mean(), rel=0.05)
    measured_ratio = raw[40:60].std(ddof=1) / raw[:40].std(ddof=1)  # 1.53 in this draw, 2 in truth
    assert 1.3 < source["spread_ratio"] < measured_ratio
    assert summary["corrections"]["target"] == source  # 1 held-out target clip: the source's corrections
    assert stats["00/source"][0] == pytest.approx(raw[40:60].mean(), abs=0.02)  # as if none were trained on
    assert stats["00/target"][0] == pytest.approx(raw[60:69].mean() + source["gap"], abs=0.05)
    assert summary["00/target"]["clips"] == 10


def test_a_network_that_does_not_overfit_is_barely_corrected_and_new_clips_widen_the_spread():
    rng = np.random.default_rng(5)
    raw = rng.normal(1.0, 0.1, 60)
    held = np.arange(60) % 5 == 0
    plain, summary = condition_statistics(raw, ["00"] * 60, ["source"] * 60, held)
    assert plain["00/source"] == pytest.approx((raw.mean(), raw.std(ddof=1)), rel=0.05)
    # differences within their sampling error are shrunk away, not applied as corrections
    assert summary["corrections"]["source"]["gap"] < 0.01 and summary["corrections"]["source"]["spread_ratio"] < 1.1
    widened, summary = condition_statistics(raw, ["00"] * 60, ["source"] * 60, held, quantile=0.9)
    assert widened["00/source"][1] > plain["00/source"][1] and "widened" in summary["00/source"]["rule"]


def test_without_held_out_clips_nothing_is_corrected():
    raw = np.arange(12, dtype=float)
    stats, summary = condition_statistics(raw, ["00"] * 12, ["source"] * 8 + ["target"] * 4, np.zeros(12, bool))
    assert set(stats) == {"00/source", "00/target"} and summary["corrections"]["source"]["gap"] == 0.0
    assert stats["00/target"][0] == pytest.approx(9.5)


def test_a_target_condition_spreads_at_least_as_its_sections_source():
    rng = np.random.default_rng(3)
    source = rng.normal(1.0, 0.1, 50)
    tight, wide = rng.normal(1.5, 0.02, 10), rng.normal(1.5, 0.3, 10)
    raw = np.concatenate([source, tight, source, wide, tight])
    sections = ["00"] * 60 + ["01"] * 60 + ["02"] * 10  # section 02 has no source clips
    domains = (["source"] * 50 + ["target"] * 10) * 2 + ["target"] * 10
    stats, summary = condition_statistics(raw, sections, domains, np.zeros(raw.size, bool))
    assert stats["00/target"] == pytest.approx((tight.mean(), source.std(ddof=1)))
    assert "its section's source spread" in summary["00/target"]["rule"]
    assert stats["01/target"] == pytest.approx((wide.mean(), wide.std(ddof=1)))  # wider than the source: its own
    assert stats["02/target"] == pytest.approx((tight.mean(), tight.std(ddof=1)))  # nothing to borrow from
    assert stats["00/source"][1] == pytest.approx(source.std(ddof=1))  # a source keeps its own spread


def _toy_conditions(rng):
    """Two sections; section 00 has a target condition whose spectrum is 3 dB up in the low bands."""
    frames = rng.normal(0, 1, (70, 20, 8)).astype("float32")
    frames[60:, :, :4] += 3.0
    sections = np.array(["00"] * 35 + ["01"] * 25 + ["00"] * 10)
    domains = np.array(["source"] * 60 + ["target"] * 10)
    return frames, sections, domains


def test_the_keras_graph_scores_as_numpy_does_and_assigns_by_the_descriptor():
    rng = np.random.default_rng(2)
    frames, sections, domains = _toy_conditions(rng)
    features = keras.Input((20, 8))
    raw_model = keras.Model(features, keras.ops.mean(keras.ops.square(features), axis=(1, 2)))
    descriptor = autoencoder_descriptor()
    descriptors = frames.mean(axis=1)
    mean, variance, mixtures = fit_conditions(descriptors, sections, domains)
    assert list(mixtures) == ["00/source", "00/target", "01/source"]
    raw = raw_model.predict(frames, verbose=0)
    stats, summary = condition_statistics(raw, sections, domains, np.ones(70, bool))
    conditions = Conditions(mean, variance, mixtures, stats, summary)
    model = conditioned_scoring_model(raw_model, descriptor, conditions)
    assert conditioned_parts(model) == (raw_model, descriptor)  # what a saved detector is re-judged from
    np.testing.assert_allclose(model.predict(frames, verbose=0), conditions.score(descriptors, raw), atol=1e-3)
    target = conditions.score(descriptors[60:], raw[60:])
    direct = (raw[60:] - stats["00/target"][0]) / stats["00/target"][1]
    np.testing.assert_allclose(target, direct, atol=1e-3)  # a target clip is judged by its own condition
    assert describe(conditions)["groups"] == ["00/source", "00/target", "01/source"]


def test_views_are_each_judged_in_the_clips_condition_then_fused_by_their_maximum():
    rng = np.random.default_rng(4)
    frames, sections, domains = _toy_conditions(rng)
    features = keras.Input((20, 8))
    views = [keras.ops.mean(keras.ops.square(features), axis=(1, 2)), keras.ops.max(keras.ops.abs(features), axis=(1, 2))]
    raw_model = keras.Model(features, views)
    descriptors = frames.mean(axis=1)
    mean, variance, mixtures = fit_conditions(descriptors, sections, domains)
    raw = raw_model.predict(frames, verbose=0)
    judged = [Conditions(mean, variance, mixtures, *condition_statistics(r, sections, domains, np.ones(70, bool)))
              for r in raw]
    model = conditioned_scoring_model(raw_model, autoencoder_descriptor(), judged)
    expected = np.maximum(*(c.score(descriptors, r) for c, r in zip(judged, raw)))
    np.testing.assert_allclose(model.predict(frames, verbose=0), expected, atol=1e-3)
    assert judged[0].score_stats != judged[1].score_stats  # each view its own statistics, the groups shared
    assert sum(isinstance(layer, keras.layers.Layer) and layer.name.startswith("gmm_nll") for layer in model.layers) == 3


def test_a_single_condition_is_a_standardisation():
    raw = np.array([1.0, 2.0, 3.0])
    conditions = Conditions(np.zeros(2), np.ones(2), {}, {"00/source": (2.0, 0.5)}, {})
    np.testing.assert_allclose(conditions.score(np.zeros((3, 2)), raw), [-2.0, 0.0, 2.0])


def test_a_model_of_one_condition_has_no_descriptor_to_judge_again():
    from asdkeras.errors import AsdError

    features = keras.Input((20, 8))
    raw_model = keras.Model(features, keras.ops.mean(keras.ops.square(features), axis=(1, 2)))
    conditions = Conditions(np.zeros(8), np.ones(8), {}, {"00/source": (2.0, 0.5)}, {})
    with pytest.raises(AsdError, match="one condition"):
        conditioned_parts(conditioned_scoring_model(raw_model, autoencoder_descriptor(), conditions))


def test_the_image_descriptor_averages_time_then_bands():
    images = np.zeros((1, 320, 320, 3), "float32")
    images[0, :5, :, 0] = 10.0  # the first 5 rows: band 0 of 64
    spectrum = keras.ops.convert_to_numpy(mobilenet_descriptor(320)(images))
    assert spectrum.shape == (1, 64) and spectrum[0, 0] == pytest.approx(10.0) and spectrum[0, 1:].max() == 0
    assert ImageSpectrum.from_config(ImageSpectrum(16).get_config()).bands == 16


def test_a_minimum_per_condition_holds_out_a_superset():
    keys = [("00", "source")] * 50 + [("00", "target")] * 10 + [("01", "target")] * 3
    small = split_validation(keys, 0.1, seed=3)
    large = split_validation(keys, 0.1, seed=3, minimum=5)
    assert (large >= small).all() and large[50:60].sum() == 5 and large[60:].sum() == 1  # up to half of 3
    assert small[50:60].sum() == 1 and large[:50].sum() == 5


def test_the_prediction_scale_makes_a_new_normal_exceed_the_threshold_as_intended():
    from asdkeras.models.conditions import prediction_scale
    from asdkeras.scoring import prediction_threshold

    rng = np.random.default_rng(4)
    measured = rng.normal(3.0, 2.0, (20000, 5))  # 5 held-out clips of a condition, 20000 times
    new = rng.normal(3.0, 2.0, 20000)
    widened = measured.std(axis=1, ddof=1) * prediction_scale(5, 0.9)
    z = (new - measured.mean(axis=1)) / widened
    threshold = prediction_threshold(z[:100], ["source"] * 100, 0.9, "test clips")
    assert np.mean(z > threshold["value"]) == pytest.approx(0.10, abs=0.01)
    assert prediction_scale(5, 0.9) == pytest.approx(1.31, abs=0.01) and prediction_scale(1000, 0.9) < 1.01
    assert threshold["rule"] == "condition-prediction" and set(threshold["flagged_share_by_group"]) == {"source"}
