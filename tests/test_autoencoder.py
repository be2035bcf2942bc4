import keras
import numpy as np
import pytest

from asdkeras.models.autoencoder import autoencoder_loss, build_autoencoder


def test_baseline_architecture():
    model = build_autoencoder(640)
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 9
    assert model.output_shape == (None,)


def test_error_is_the_mean_squared_difference_of_normalised_input_and_reconstruction():
    mean, variance = np.full(640, 3.0), np.full(640, 4.0)
    model = build_autoencoder(640, mean, variance)
    x = np.random.default_rng(0).normal(3.0, 2.0, (4, 640)).astype("float32")
    normalised = (x - 3.0) / 2.0
    layer_input = model.get_layer("normalise")(x)
    np.testing.assert_allclose(layer_input, normalised, atol=1e-5)
    reconstruction = keras.Model(model.input, model.get_layer("reconstruction").output)(x).numpy()
    np.testing.assert_allclose(model(x).numpy(), ((normalised - reconstruction) ** 2).mean(axis=1), rtol=1e-4)


@pytest.mark.parametrize("kind, y, e, expected", [
    ("mse", [0.0, 0.0], [0.3, 2.0], [0.3, 2.0]),
    ("oe", [0.0, 1.0, 1.0], [0.3, 0.4, 1.5], [0.3, 0.6, 0.5]),          # |y - e|
    ("oe-hinge", [0.0, 1.0, 1.0], [0.3, 0.4, 1.5], [0.3, 0.6, 0.0]),    # e on normals, max(0, 1 - e) on outliers
])
def test_losses(kind, y, e, expected):
    loss = autoencoder_loss(kind, margin=1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss(np.array(y), np.array(e))), expected, atol=1e-6)


def test_unknown_loss():
    from asdkeras.detectors.autoencoder import AutoencoderConfig
    from asdkeras.errors import AsdError

    with pytest.raises(ValueError, match="unknown loss"):
        autoencoder_loss("l1")
    with pytest.raises(AsdError, match="--loss must be one of mse, oe, oe-hinge. Received: 'l1'"):
        AutoencoderConfig(machine="valve", loss="l1")


def test_the_configuration_offers_exactly_the_models_choices():
    """The TensorFlow-free choices the command line offers are the ones the model implements."""
    from asdkeras.detectors.autoencoder import ERROR_POOLING_VIEWS
    from asdkeras.models.autoencoder import ERROR_POOLINGS, LOSSES

    for kind in LOSSES:
        assert callable(autoencoder_loss(kind))
    assert {name: len(views) for name, views in ERROR_POOLING_VIEWS.items()} == \
        {name: len(decays) for name, decays in ERROR_POOLINGS.items()}


def test_save_and_load_keeps_predictions(tmp_path):
    model = build_autoencoder(640, np.ones(640), np.full(640, 2.0))
    x = np.random.default_rng(1).standard_normal((3, 640)).astype("float32")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5)


def test_scoring_model_gives_each_clip_the_mean_error_of_its_stacked_vectors():
    import tensorflow as tf

    from asdkeras.features import LogMelConfig, stack_frames
    from asdkeras.models.autoencoder import autoencoder_scoring_model

    network = build_autoencoder(640)
    scoring = autoencoder_scoring_model(network, 313, 128, 5)
    frames = np.random.default_rng(2).standard_normal((3, 313, 128)).astype("float32")
    expected = [network(stack_frames(tf.constant(clip), LogMelConfig())).numpy().mean() for clip in frames]
    assert scoring.output_shape == (None,)
    np.testing.assert_allclose(scoring.predict(frames, batch_size=2, verbose=0), expected, rtol=1e-4)


def test_mean_and_peak_pooling_gives_each_clip_both_views_of_its_vector_errors():
    import tensorflow as tf

    from asdkeras.features import LogMelConfig, stack_frames
    from asdkeras.models.autoencoder import autoencoder_scoring_model
    from asdkeras.models.gmm import gwrp_weights

    network = build_autoencoder(640)
    scoring = autoencoder_scoring_model(network, 313, 128, 5, pooling="mean+peak")
    frames = np.random.default_rng(3).standard_normal((3, 313, 128)).astype("float32")
    errors = [network(stack_frames(tf.constant(clip), LogMelConfig())).numpy() for clip in frames]
    mean, peak = scoring.predict(frames, batch_size=2, verbose=0)
    np.testing.assert_allclose(mean, [e.mean() for e in errors], rtol=1e-4)
    np.testing.assert_allclose(peak, [np.sort(e)[::-1] @ gwrp_weights(0.5, e.size) for e in errors], rtol=1e-4)
    assert np.all(peak > mean)  # the peak of a clip's errors lies above their mean


def test_an_unknown_error_pooling_is_refused():
    from asdkeras.detectors.autoencoder import AutoencoderConfig
    from asdkeras.errors import AsdError
    from asdkeras.models.autoencoder import autoencoder_scoring_model

    with pytest.raises(ValueError, match="Received: pooling='median'"):
        autoencoder_scoring_model(build_autoencoder(640), pooling="median")
    with pytest.raises(AsdError, match="--error-pooling must be one of mean, mean\\+peak. Received: 'max'"):
        AutoencoderConfig(machine="valve", error_pooling="max")
