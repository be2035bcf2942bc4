"""The quantisation-aware twin of MobileNetV2: folding, fake quantisation, TFLite conversion."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from asdkeras.models.mobilenet import build_mobilenet
from asdkeras.conversion import convert
from asdkeras.models.quantise import (DEAD_CHANNEL_WEIGHT, FakeQuant, FoldedConv, _fake_quant_weights, calibrate_ranges,
                                      folded_weights, for_conversion, quantisation_aware)
from conftest import needs_weights


pytestmark = [needs_weights, pytest.mark.slow]  # fits models: the full suite only, not the fast lane


@pytest.fixture(scope="module")
def network():
    """ImageNet MobileNetV2 (width 0.35, 64 px: random weights give near-constant deep features)."""
    keras.utils.set_random_seed(0)
    model = build_mobilenet(64, 0.35, "imagenet")
    rng = np.random.default_rng(0)
    # images from dark and flat to bright and busy, so the network's outputs spread widely
    level, contrast = rng.uniform(20, 235, (2, 48, 1, 1, 1))
    images = np.clip(level + contrast * rng.uniform(-1, 1, (48, 64, 64, 3)), 0, 255).astype(np.float32)
    # a head that reads the pooled features' main direction of change, as a trained one would
    pooled = keras.Model(model.input, model.get_layer("pool").output).predict(images, verbose=0)
    centred = pooled - pooled.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    spread = (centred @ direction).std()
    model.get_layer("logit").set_weights([(direction / spread)[:, np.newaxis], -np.array([pooled.mean(axis=0) @ direction / spread])])
    return model, images


def test_folded_network_computes_what_the_original_does(network):
    model, images = network
    folded, _ = quantisation_aware(model, quantise=False)
    logit = keras.Model(model.input, model.get_layer("logit").output).predict(images, verbose=0)
    folded_logit = keras.Model(folded.input, folded.get_layer("logit").output).predict(images, verbose=0)
    # float activations, but int8 weights already: close, not equal (folding alone is exact, below)
    assert np.corrcoef(logit[:, 0], folded_logit[:, 0])[0, 1] >= 0.95
    assert not any(isinstance(layer, FakeQuant) for layer in folded.layers)


def test_folding_is_exact_before_weight_rounding(network):
    model, images = network
    base = model.layers[2]
    conv, norm = base.get_layer("Conv1"), base.get_layer("bn_Conv1")
    kernel, bias = folded_weights(conv, norm)
    x = tf.constant(images[:2] / 127.5 - 1)
    expected = norm(conv(x), training=False).numpy()
    got = tf.nn.bias_add(tf.nn.conv2d(x, kernel, conv.strides, conv.padding.upper()), bias).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_dead_channels_keep_the_int32_bias_in_range():
    conv = keras.layers.Conv2D(4, 1, use_bias=False)
    conv.build((None, 2, 2, 3))
    kernel = np.ones((1, 1, 3, 4), np.float32)
    kernel[..., 2] = 0.0  # a channel ImageNet training switched off
    conv.set_weights([kernel])
    norm = keras.layers.BatchNormalization()
    norm.build((None, 2, 2, 4))
    norm.set_weights([np.ones(4), np.full(4, 3.0), np.zeros(4), np.ones(4)])
    folded, bias = folded_weights(conv, norm)
    assert np.abs(folded[..., 2]).max() == pytest.approx(DEAD_CHANNEL_WEIGHT)
    assert bias[2] == pytest.approx(3.0)
    # TFLite's bias scale: input scale (~0.0235 after ReLU6) x weight scale (max|w| / 127)
    assert abs(bias[2]) / (6 / 255 * np.abs(folded[..., 2]).max() / 127) < 2 ** 31


def test_fake_quantised_values_lie_on_int8_grids(network):
    model, images = network
    twin, _ = quantisation_aware(model)
    assert calibrate_ranges(model, twin, tf.data.Dataset.from_tensor_slices(images).batch(16)) == 3
    quantiser = twin.get_layer("Conv1_relu_quant")
    low, high = float(quantiser.minimum.numpy()), float(quantiser.maximum.numpy())
    assert low == 0.0 and 0 < high <= 6.0
    probe = keras.Model(twin.input, quantiser.output)
    levels = probe(images[:4]).numpy() / ((high - low) / 255)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert len(np.unique(np.round(levels))) <= 256
    conv = twin.get_layer("block_1_project")
    kernel = conv.kernel.numpy()
    step = np.abs(kernel).max(axis=(0, 1, 2)) / 127
    quantised = _fake_quant_weights(tf.constant(kernel))[0].numpy() / step
    np.testing.assert_allclose(quantised, np.round(quantised), atol=1e-3)
    assert np.abs(np.round(quantised)).max() == 127


def test_twin_trains_where_the_original_trains(network):
    model, _ = network
    model.layers[2].trainable = True
    for layer in model.layers[2].layers:
        layer.trainable = layer.name.startswith("block_16_")
    twin, _ = quantisation_aware(model)
    trainable = {layer.name for layer in twin.layers if isinstance(layer, FoldedConv) and layer.trainable}
    assert trainable == {"block_16_expand", "block_16_depthwise", "block_16_project"}
    assert twin.get_layer("logit").trainable


def test_tflite_int8_network_computes_exactly_what_the_twin_computes(network, tmp_path):
    """TFLite reads the fake-quantisation ops as trained quantisation (an int8 network with the
    twin's ranges, no calibration data), and the twin rounds as TFLite's kernels do: every int8
    activation equal, so the scores differ only by the float tail's arithmetic."""
    model, images = network
    twin, _ = quantisation_aware(model)
    calibrate_ranges(model, twin, tf.data.Dataset.from_tensor_slices(images).batch(16))
    scoring = keras.Model(twin.input, twin.get_layer("logit").output)
    archive = keras.export.ExportArchive()
    archive.track(scoring)
    with for_conversion(scoring):
        archive.add_endpoint("score", lambda x: {"score": scoring(x, training=False)},
                             input_signature=[tf.TensorSpec((1, 64, 64, 3), tf.float32)])
        archive.write_out(str(tmp_path / "saved"), verbose=False)
    content = convert(str(tmp_path / "saved"), "int8", quantisation_aware=True)
    interpreter = tf.lite.Interpreter(model_content=content)
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    quantiser = twin.get_layer("Conv1_relu_quant")
    conv1 = [d for name, d in details.items() if "Conv1_relu" in name and d["dtype"] == np.int8]
    assert conv1 and conv1[0]["quantization"][0] == pytest.approx(
        (float(quantiser.maximum.numpy()) - float(quantiser.minimum.numpy())) / 255, rel=1e-3)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "QUANTIZE"} <= ops
    runner = interpreter.get_signature_runner("score")
    lite = np.array([runner(x=image[np.newaxis])["score"].reshape(()) for image in images])
    keras_scores = scoring.predict(images, verbose=0).reshape(-1)
    print(f"Keras scores {keras_scores.std():.3g} std, max |TFLite - Keras| {np.abs(lite - keras_scores).max():.3g}, "
          f"Spearman {scipy.stats.spearmanr(lite, keras_scores)[0]:.4f}")
    assert scipy.stats.spearmanr(lite, keras_scores)[0] >= 0.9999
    np.testing.assert_allclose(lite, keras_scores, atol=1e-3 * keras_scores.std())
    int8_layers = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8 and "relu" in d["name"]]
    assert len(int8_layers) >= 30  # every block's ReLU6 outputs are int8 tensors


def test_twin_rounds_as_tflite_kernels_do():
    """gemmlowp / ruy fixed-point rescaling: round(round(acc q / 2^31) / 2^r), ties away from zero
    (depthwise, add) or up (ruy's convolutions); one rounding would give 43 for the first case."""
    from asdkeras.models.quantise import _scale_by

    accumulators = tf.constant([264, -100, 5000, -2, 2], tf.int64)
    multiplier = tf.constant([0.16459958, 0.16459958, 0.0041, 0.25, 0.25], tf.float64)
    assert _scale_by(accumulators, multiplier).numpy().tolist() == [44, -17, 21, -1, 1]
    assert _scale_by(accumulators, multiplier, ties_up=True).numpy().tolist() == [44, -16, 21, 0, 1]
