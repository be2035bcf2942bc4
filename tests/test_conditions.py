"""Scores judged per operating condition: statistics, assignment, and the Keras graph against NumPy."""

import keras
import numpy as np
import pytest

from asdkeras.models.autoencoder import autoencoder_descriptor
from asdkeras.models.condition_statistics import condition_statistics
from asdkeras.models.conditions import (Conditions, conditioned_parts, conditioned_scoring_model, describe,
                                        fit_conditions)
from asdkeras.models.mixtures import group_of
from asdkeras.models.mobilenet import ImageSpectrum, mobilenet_descriptor
from asdkeras.splits import split_validation


def test_group_of_names_section_and_domain():
    assert group_of(["00", "01", "01"], ["source", "target", "unknown"]).tolist() == \
        ["00/source", "01/target", "01/source"]


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
