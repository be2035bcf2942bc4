import os

import h5py
import keras
import numpy as np
import pytest

from asdkeras.errors import AsdError
from asdkeras.detectors.mobilenet import early_stopping_monitor
from asdkeras.models.mobilenet import (base_network, build_mobilenet, imagenet_weights_file, mobilenet_scoring_model,
                                       unfreeze_top_blocks)
from conftest import KERAS_WEIGHTS, needs_weights

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")
WEIGHTS_035 = os.path.join(KERAS_WEIGHTS, imagenet_weights_file(0.35))


def _conv1_kernel(model):
    return base_network(model).get_layer("Conv1").get_weights()[0]


@needs_weights
def test_imagenet_weights_are_loaded_from_keras_cache():
    """weights="imagenet" resolves offline through KERAS_HOME; the first conv equals the file's array."""
    pretrained = build_mobilenet(96, 0.35, "imagenet")
    scratch = build_mobilenet(96, 0.35, None)
    with h5py.File(WEIGHTS_035) as handle:
        stored = handle["Conv1/Conv1/kernel"][()]
    np.testing.assert_array_equal(_conv1_kernel(pretrained), stored)
    assert not np.allclose(_conv1_kernel(scratch), stored)
    from_path = build_mobilenet(96, 0.35, WEIGHTS_035)
    np.testing.assert_array_equal(_conv1_kernel(from_path), stored)


def test_missing_imagenet_weights_say_which_file_to_place_where(tmp_path, monkeypatch, capsys):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):  # what Keras prints and raises when the download fails
        print("Downloading data from https://storage.googleapis.com/...")
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(AsdError) as err:
        build_mobilenet(160, 0.35, "imagenet")
    message = str(err.value)
    # The 224 file serves every size: that is the one to place, whatever size was asked for.
    assert imagenet_weights_file(0.35) in message and "_160_" not in message and str(tmp_path / "models") in message
    assert "--weights PATH" in message and "\n" not in message
    assert "Downloading data from" not in capsys.readouterr().out


def test_bad_weights_arguments():
    with pytest.raises(AsdError, match="no such weights file"):
        build_mobilenet(96, 0.35, "/nowhere/w.h5")
    with pytest.raises(AsdError, match="no ImageNet weights for MobileNetV2 width 0.6"):
        build_mobilenet(96, 0.6, "imagenet")


def test_input_scaling_is_mobilenet_v2_preprocess_input():
    model = build_mobilenet(96, 0.35, None)
    pixels = np.array([[0.0, 127.5, 255.0]], np.float32)
    np.testing.assert_allclose(model.get_layer("preprocess_input")(pixels).numpy(),
                               keras.applications.mobilenet_v2.preprocess_input(pixels.copy()), atol=1e-6)
    p = model(np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")).numpy()
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))


def test_scoring_model_gives_the_negative_logit_sharing_the_weights():
    import scipy.special

    model = build_mobilenet(96, 0.35, None)
    scoring = mobilenet_scoring_model(model)
    images = np.random.default_rng(1).uniform(0, 255, (3, 96, 96, 3)).astype("float32")
    scores = scoring(images).numpy()
    assert scores.shape == (3,)
    np.testing.assert_allclose(scipy.special.expit(scores), 1 - model(images).numpy(), atol=1e-6)
    kernel = model.get_layer("logit").kernel
    kernel.assign(kernel * 2.0)  # same layer object: the scoring model follows the trained one
    np.testing.assert_allclose(scipy.special.expit(-scoring(images).numpy()), model(images).numpy(), atol=1e-6)


@needs_weights
def test_unfreeze_top_blocks_leaves_batch_norm_and_lower_blocks_frozen():
    model = build_mobilenet(96, 0.35, "imagenet")
    assert not any(layer.trainable for layer in base_network(model).layers)
    unfreeze_top_blocks(model, 3)
    trainable = {layer.name for layer in base_network(model).layers if layer.trainable and layer.weights}
    assert trainable and all(name.startswith(("block_14_", "block_15_", "block_16_", "Conv_1")) for name in trainable)
    assert "Conv_1" in trainable and "block_14_expand" in trainable and "block_13_expand" not in trainable
    assert not any(isinstance(base_network(model).get_layer(n), keras.layers.BatchNormalization) for n in trainable)


def test_from_scratch_the_whole_network_trains_with_batch_norm_in_training_mode():
    model = build_mobilenet(96, 0.35, None)
    base = base_network(model)
    assert base.trainable and all(layer.trainable for layer in base.layers)
    images = np.random.default_rng(3).uniform(0, 255, (4, 96, 96, 3)).astype("float32")
    bn = base.get_layer("bn_Conv1")
    before = bn.moving_mean.numpy().copy()
    model(images, training=True)
    assert not np.allclose(bn.moving_mean.numpy(), before)  # statistics update: not frozen inference mode


def test_batch_norm_recalibration_lets_inference_match_training_after_a_short_fit():
    """After a short fit from scratch, recalibrated statistics let inference separate what training did."""
    import tensorflow as tf

    from asdkeras.models.mobilenet import recalibrate_batch_norm

    rng = np.random.default_rng(5)
    bright = rng.uniform(150, 255, (32, 64, 64, 3)).astype("float32")
    dark = rng.uniform(0, 100, (32, 64, 64, 3)).astype("float32")
    images, labels = np.concatenate([bright, dark]), np.array([1.0] * 32 + [0.0] * 32, "float32")
    model = build_mobilenet(64, 0.35, None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(images, labels, batch_size=16, epochs=8, verbose=0)
    batches = tf.data.Dataset.from_tensor_slices(images).shuffle(64, seed=0).batch(16)
    momenta = [layer.momentum for layer in base_network(model).layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert recalibrate_batch_norm(model, batches) == 4
    p = model.predict(images, verbose=0)
    assert p[:32].mean() > p[32:].mean() + 0.5
    assert momenta == [layer.momentum for layer in base_network(model).layers
                       if isinstance(layer, keras.layers.BatchNormalization)]  # restored


@needs_weights
def test_pretrained_base_starts_frozen_in_inference_mode():
    model = build_mobilenet(96, 0.35, "imagenet")
    base = base_network(model)
    bn = base.get_layer("bn_Conv1")
    before = bn.moving_mean.numpy().copy()
    model(np.random.default_rng(4).uniform(0, 255, (4, 96, 96, 3)).astype("float32"), training=True)
    assert not base.trainable and np.array_equal(bn.moving_mean.numpy(), before)


def test_early_stopping_ignores_validation_loss_when_training_from_scratch():
    assert early_stopping_monitor("imagenet", has_validation=True) == "val_loss"
    assert early_stopping_monitor(None, has_validation=True) == "loss"
    assert early_stopping_monitor("imagenet", has_validation=False) == "loss"


@needs_weights
def test_a_phase_of_a_few_batches_runs_eagerly_and_trains_as_a_traced_one():
    """Tiny phases (a handful of clips, as in the tests) run eagerly, larger ones traced
    (``EAGER_BATCHES``). Both compute the same update: here of the int8 twin (the project's own
    fake-quantisation layers) with its top block unfrozen, as ``fit`` fine-tunes it."""
    from asdkeras.models.mobilenet import EAGER_BATCHES, runs_eagerly
    from asdkeras.models.quantise import quantisation_aware

    assert runs_eagerly(1) and runs_eagerly(EAGER_BATCHES) and not runs_eagerly(EAGER_BATCHES + 1)
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    labels = (rng.uniform(size=16) > 0.5).astype("float32")
    trained = []
    for eager in (True, False):
        keras.utils.set_random_seed(0)
        network = build_mobilenet(32, 0.35, "imagenet")
        unfreeze_top_blocks(network, 1)
        twin, _ = quantisation_aware(network)
        twin.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", run_eagerly=eager)
        twin.fit(images, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
        trained.append([w.numpy() for w in twin.trainable_weights])
    assert len(trained[0]) > 2  # the top block's weights, not the head's alone
    for eager_weights, traced_weights in zip(*trained):
        np.testing.assert_allclose(eager_weights, traced_weights, rtol=0, atol=1e-5)  # measured: equal
