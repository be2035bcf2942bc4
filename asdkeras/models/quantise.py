"""Quantisation-aware twin of a MobileNetV2 detector: the network as TFLite's int8 kernels compute it.

Post-training int8 quantisation of the fine-tuned MobileNetV2 changed its decisions on 2-19 % of
test clips. The remedy (Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; Krishnamoorthi, "Quantizing deep convolutional
networks for efficient inference", 2018) is a float network that already computes with int8
values, fine-tuned so, which TFLite then converts without calibration of its own. TensorFlow Model
Optimization, the usual tool, does not support Keras 3 models, so the twin is built here:

* every batch normalisation is folded into the convolution before it (TFLite folds it too, so
  the weights quantised here are the ones TFLite stores);
* weights are fake-quantised per output channel, symmetric, 255 levels (TFLite's int8 weights),
  and biases rounded to TFLite's int32 bias steps (input scale x weight scale);
* activations after every ReLU6, projection and residual sum, and the network input, are
  fake-quantised per tensor with 256 levels over a range calibrated on training images
  (TFLite's int8 activations);
* every output is rounded as TFLite's int8 kernels round it (their fixed-point rescaling, with
  its two roundings and each kernel's tie rule, :func:`_scale_by`), so the twin's int8 values
  are the TFLite model's, bit for bit: measured on every layer of a fine-tuned twin and its
  TFLite file (x86, TFLite's default optimised kernels). Training rounds once, as
  ``fake_quant`` does: the gradient is the same, and the exact rounding's 64-bit integer
  arithmetic made the twin's fit several times longer.

``tf.quantization.fake_quant_*`` ops are what ``TFLiteConverter`` reads as trained quantisation:
with ``Optimize.DEFAULT`` it turns the twin into an int8 network with exactly these ranges and
weights, and leaves the rest of the graph (front-end, pooling, logit, score) float. Graphs for
the converter are traced inside :func:`for_conversion`, which leaves the rounding to TFLite.
Other int8 kernels (XNNPack's on ARM, TFLite's reference kernels) round some ties differently;
there the twin is close rather than exact.
"""

from __future__ import annotations

import contextlib
import functools

import keras
import numpy as np
from keras import layers

DEAD_CHANNEL_WEIGHT = 1e-4
"""Largest |weight| given to a folded channel whose weights are all (nearly) zero.

TFLite stores a convolution's bias as int32 in units of input scale x weight scale; with a weight
scale near zero (ImageNet MobileNetV2 has such dead channels) the bias overflows int32 and the
channel's constant output is wrong. One weight of this size (an output change below 0.03 of a
quantisation step) keeps the bias in range."""


@keras.saving.register_keras_serializable("asdkeras")
class FakeQuant(layers.Layer):
    """Fake int8 quantisation of an activation: per tensor, 256 levels over [minimum, maximum].

    The range is set by :func:`calibrate_ranges` and then kept (not trained), with zero on a
    level, as TFLite requires. ``fake_quant_with_min_max_vars`` marks the tensor for the TFLite
    converter and gives the training gradient; the values are TFLite's (``QUANTIZE`` rounds
    x / scale to nearest with ties away from zero, where ``fake_quant`` rounds ties up: every
    whole-pixel input of a [-1, 1] range is such a tie).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emulates_rounding = True

    def build(self, input_shape):
        self.minimum = self.add_weight(shape=(), initializer="zeros", trainable=False, name="minimum")
        self.maximum = self.add_weight(shape=(), initializer="ones", trainable=False, name="maximum")

    def call(self, x, training=False):
        import tensorflow as tf

        marked = tf.quantization.fake_quant_with_min_max_vars(x, self.minimum, self.maximum, num_bits=8)
        if training or not self.emulates_rounding:
            return marked
        step = (self.maximum - self.minimum) / 255
        zero = tf.round(-self.minimum / step)
        levels = tf.clip_by_value(tf.sign(x) * tf.floor(tf.abs(x) / step + 0.5), -zero, 255 - zero)
        return marked + tf.stop_gradient(levels * step - marked)


def _fake_quant_weights(kernel):
    """Per-output-channel (last axis) symmetric int8 weights: levels -127..127 of max|w| / 127.

    Returns the weights and each channel's scale max|w| / 127.
    """
    import tensorflow as tf

    reduce = list(range(len(kernel.shape) - 1))
    limit = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=reduce), 1e-12))
    return (tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -limit, limit, num_bits=8,
                                                                     narrow_range=True), limit / 127)


def _scale_by(accumulator, multiplier, ties_up: bool = False):
    """``accumulator`` x ``multiplier`` rounded as TFLite's integer kernels round it, exactly
    (:func:`_scale_by_ops`), as one traced function called from the network's graph.

    The rescaling is some thirty integer ops, and a graph of the twin traces it about eighty times
    (every convolution and residual sum): built inline, those ops were half the twin's tracing
    time. As one function, traced once per tie rule and input rank, each use is a single call.
    """
    return _traced_scale_by(ties_up)(accumulator, multiplier)


@functools.cache
def _traced_scale_by(ties_up: bool):
    import tensorflow as tf

    return tf.function(functools.partial(_scale_by_ops, ties_up=ties_up), reduce_retracing=True, autograph=False)


def _scale_by_ops(accumulator, multiplier, ties_up: bool = False):
    """``accumulator`` x ``multiplier`` rounded as TFLite's integer kernels round it, exactly.

    TFLite stores a multiplier as m 2^e (m in [0.5, 1) as the int32 q = round(m 2^31)) and
    applies it in two rounded steps: gemmlowp's doubling high product ``round(acc q / 2^31)``
    (ties away from zero), then a right shift by -e, rounding ties away from zero (gemmlowp:
    depthwise convolution, addition) or up towards +inf (ruy, which computes the convolutions).
    Rounding once, as ``fake_quant`` does, disagreed with TFLite on 7 % of a fine-tuned
    MobileNetV2's first depthwise outputs, and differences grew layer by layer.

    ``accumulator``: int64 tensor; ``multiplier``: float64, broadcast over it. Returns int64.
    """
    import tensorflow as tf

    exponent = tf.floor(tf.math.log(multiplier) / np.log(2.0)) + 1.0
    mantissa = multiplier / tf.pow(tf.constant(2.0, tf.float64), exponent)
    exponent += tf.cast(mantissa >= 1.0, tf.float64) - tf.cast(mantissa < 0.5, tf.float64)  # log rounding
    mantissa = multiplier / tf.pow(tf.constant(2.0, tf.float64), exponent)
    q = tf.cast(tf.floor(mantissa * 2.0 ** 31 + 0.5), tf.int64)
    exponent = tf.cast(exponent, tf.int64) + tf.cast(q == 2 ** 31, tf.int64)
    q = tf.where(q == 2 ** 31, tf.constant(2 ** 30, tf.int64), q)
    x = accumulator * tf.bitwise.left_shift(tf.ones_like(exponent), tf.maximum(exponent, 0))
    product = x * q
    nudge = tf.where(product >= 0, tf.constant(2 ** 30, tf.int64), tf.constant(1 - 2 ** 30, tf.int64))
    high = tf.truncatediv(product + nudge, tf.constant(2 ** 31, tf.int64))
    shift = tf.maximum(-exponent, 0)
    floor = tf.bitwise.right_shift(high, shift)  # arithmetic: rounds towards -inf
    if ties_up:
        half = tf.bitwise.right_shift(tf.bitwise.left_shift(tf.ones_like(shift), shift), 1)
        return tf.bitwise.right_shift(high + half, shift)
    mask = tf.bitwise.left_shift(tf.ones_like(shift), shift) - 1
    threshold = tf.bitwise.right_shift(mask, 1) + tf.cast(high < 0, tf.int64)
    return floor + tf.cast(tf.bitwise.bitwise_and(high, mask) > threshold, tf.int64)


def _float64(value):
    import tensorflow as tf

    return tf.cast(tf.convert_to_tensor(value), tf.float64)


@keras.saving.register_keras_serializable("asdkeras")
class QuantisedAdd(layers.Layer):
    """A residual sum of two int8 tensors as TFLite's int8 ADD computes it, exactly.

    TFLite rescales both inputs (20 bits of headroom) to twice the larger input scale, adds, and
    rescales to the output scale, rounding at each step (:func:`_scale_by`). The scales are set
    by :func:`calibrate_ranges`; until then, and in graphs traced for conversion, a plain sum.
    """

    LEFT_SHIFT = 20

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emulates_rounding = True

    def build(self, input_shape):
        self.scales = self.add_weight(shape=(3,), initializer="zeros", trainable=False, name="scales")

    def call(self, inputs, training=False):
        import tensorflow as tf

        first, second = inputs
        total = first + second
        if training or not self.emulates_rounding:
            return total
        scales = tf.maximum(self.scales, 1e-30)
        first_scale, second_scale, output_scale = (_float64(scales[i]) for i in range(3))
        twice_max = 2.0 * tf.maximum(first_scale, second_scale)
        shifted = [tf.cast(tf.round(x / s), tf.int64) * 2 ** self.LEFT_SHIFT for x, s in zip(inputs, (scales[0], scales[1]))]
        summed = (_scale_by(shifted[0], first_scale / twice_max) + _scale_by(shifted[1], second_scale / twice_max))
        levels = _scale_by(summed, twice_max / (2 ** self.LEFT_SHIFT * output_scale))
        return tf.where(self.scales[2] > 0, total + tf.stop_gradient(tf.cast(levels, total.dtype) * scales[2] - total),
                        total)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable("asdkeras")
class FoldedConv(layers.Layer):
    """A convolution (or depthwise convolution) with its batch normalisation folded in, int8 weights.

    Parameters
    ----------
    filters : int or None
        Output channels (None for depthwise: one per input channel).
    kernel_size, strides : tuple of int
    padding : "same" or "valid"
    depthwise : bool
    """

    def __init__(self, filters, kernel_size, strides, padding, depthwise, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.depthwise, self.padding = filters, depthwise, padding
        self.kernel_size, self.strides = tuple(kernel_size), tuple(strides)
        self.emulates_rounding = True
        """Compute TFLite's output rounding here (:func:`_scale_by`); off in graphs traced for
        conversion, where TFLite's kernels do it (:func:`for_conversion`)."""

    def build(self, input_shape):
        channels = input_shape[-1]
        shape = (*self.kernel_size, channels, 1 if self.depthwise else self.filters)
        self.kernel = self.add_weight(shape=shape, name="kernel")
        self.bias = self.add_weight(shape=(channels if self.depthwise else self.filters,), initializer="zeros",
                                    name="bias")
        self.input_scale = self.add_weight(shape=(), initializer="zeros", trainable=False, name="input_scale")
        self.output_scale = self.add_weight(shape=(), initializer="zeros", trainable=False, name="output_scale")

    def call(self, x, training=False):
        import tensorflow as tf

        if self.depthwise:  # channels on axis 2: quantise them as the last axis, as TFLite does
            per_channel, weight_scale = _fake_quant_weights(tf.reshape(self.kernel, self.kernel.shape[:3]))
            y = tf.nn.depthwise_conv2d(x, tf.reshape(per_channel, self.kernel.shape), (1, *self.strides, 1),
                                       self.padding.upper())
        else:
            kernel, weight_scale = _fake_quant_weights(self.kernel)
            y = tf.nn.conv2d(x, kernel, self.strides, self.padding.upper())
        # TFLite adds the bias as int32 in units of input scale x weight scale: round it so here too
        # (straight-through gradient); the scales are 0 until calibrate_ranges sets them
        accumulator_step = tf.maximum(self.input_scale * weight_scale, 1e-30)
        rounded = tf.round(self.bias / accumulator_step) * accumulator_step
        bias = tf.where(self.input_scale > 0, self.bias + tf.stop_gradient(rounded - self.bias), self.bias)
        y = tf.nn.bias_add(y, bias)
        if training or not self.emulates_rounding:
            return y
        # the int32 accumulator, exact: float32 holds it to well within 0.5 at these magnitudes
        accumulator = tf.cast(tf.round(y / accumulator_step), tf.int64)
        output_scale = tf.maximum(self.output_scale, 1e-30)
        multiplier = _float64(self.input_scale) * _float64(weight_scale) / _float64(output_scale)
        levels = tf.cast(_scale_by(accumulator, tf.maximum(multiplier, 1e-30), ties_up=not self.depthwise), y.dtype)
        # on the output grid already, so the FakeQuant after it (and a ReLU6) only clip
        return tf.where(self.output_scale > 0, y + tf.stop_gradient(levels * output_scale - y), y)

    def compute_output_shape(self, input_shape):
        batch, rows, cols, channels = input_shape
        if self.padding == "valid":
            rows, cols = (None if n is None else n - k + 1 for n, k in zip((rows, cols), self.kernel_size))
        rows, cols = (None if n is None else -(-n // s) for n, s in zip((rows, cols), self.strides))
        return batch, rows, cols, channels if self.depthwise else self.filters

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "depthwise": self.depthwise}


@contextlib.contextmanager
def for_conversion(model: keras.Model):
    """Trace ``model`` inside this block for TFLite conversion: the layers leave the int8 rounding
    to TFLite's kernels, so the graph holds only the fake-quantisation ops the converter reads
    (the emulation's ops would otherwise be converted as float ops between the integer ones)."""
    emulating = [layer for layer in _all_layers(model) if isinstance(layer, (FakeQuant, FoldedConv, QuantisedAdd))]
    for layer in emulating:
        layer.emulates_rounding = False
    try:
        yield
    finally:
        for layer in emulating:
            layer.emulates_rounding = True


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def folded_weights(conv, norm) -> list[np.ndarray]:
    """Kernel and bias of ``conv`` followed by the inference-mode batch normalisation ``norm``."""
    kernel = conv.get_weights()[0]
    gamma, beta, mean, variance = norm.get_weights()
    scale = gamma / np.sqrt(variance + norm.epsilon)
    axis = 2 if isinstance(conv, layers.DepthwiseConv2D) else 3
    kernel = np.moveaxis(kernel * np.expand_dims(scale, (0, 1, 3) if axis == 2 else (0, 1, 2)), axis, 0).copy()
    by_channel = kernel.reshape(len(kernel), -1)
    dead = np.abs(by_channel).max(axis=1) < DEAD_CHANNEL_WEIGHT
    by_channel[dead, 0] = DEAD_CHANNEL_WEIGHT
    return [np.moveaxis(by_channel.reshape(kernel.shape), 0, axis).astype(np.float32),
            (beta - mean * scale).astype(np.float32)]


def _parents(network: keras.Model) -> dict[str, list[str]]:
    return {layer.name: [node.operation.name for node in layer._inbound_nodes[0].parent_nodes]
            for layer in network.layers}


def quantisation_aware(model: keras.Model, dropout: float = 0.2, quantise: bool = True,
                       name: str = "mobilenet_v2_int8") -> tuple[keras.Model, list[keras.KerasTensor]]:
    """The quantisation-aware twin of a :func:`~asdkeras.models.mobilenet.build_mobilenet` model.

    Same input (images in [0, 255]), same layer names for the head (``logit``, ``p``), weights
    copied with every batch normalisation folded; trainable where ``model`` was. The activation
    ranges start at [0, 1]: call :func:`calibrate_ranges` before use.

    Returns the twin (output p(this machine), as ``model``) and, for calibration, the tensors
    that each :class:`FakeQuant` layer quantises (in the order of the layers). With
    ``quantise=False`` the same network without fake quantisation (the folded float network).
    """
    from asdkeras.models.mobilenet import base_network

    base = base_network(model)
    parents = _parents(base)
    norm_of = {parents[layer.name][0]: layer for layer in base.layers if isinstance(layer, layers.BatchNormalization)}
    relu_after = {parents[layer.name][0] for layer in base.layers if isinstance(layer, layers.ReLU)}
    quantised = []

    def fake_quant(tensor, layer_name):
        quantised.append(tensor)
        return FakeQuant(name=f"{layer_name}_quant")(tensor) if quantise else tensor

    inputs = keras.Input(model.input.shape[1:], name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_input")(inputs)
    tensors = {}
    copies = []
    for layer in base.layers:
        inbound = [tensors[p] for p in parents[layer.name]]
        if isinstance(layer, layers.InputLayer):
            y = fake_quant(x, "input")
        elif isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            depthwise = isinstance(layer, layers.DepthwiseConv2D)
            folded = FoldedConv(None if depthwise else layer.filters, layer.kernel_size, layer.strides, layer.padding,
                                depthwise, name=layer.name)
            y = folded(inbound[0])
            copies.append((folded, folded_weights(layer, norm_of[layer.name]), layer.trainable))
        elif isinstance(layer, layers.BatchNormalization):  # folded: quantise here unless a ReLU6 follows
            y = inbound[0] if layer.name in relu_after else fake_quant(inbound[0], layer.name)
        elif isinstance(layer, layers.ReLU):
            y = fake_quant(layers.ReLU(6.0, name=layer.name)(inbound[0]), layer.name)
        elif isinstance(layer, layers.Add):
            y = fake_quant(QuantisedAdd(name=layer.name)(inbound), layer.name)
        elif isinstance(layer, layers.ZeroPadding2D):
            y = layers.ZeroPadding2D(layer.padding, name=layer.name)(inbound[0])
        else:
            raise TypeError(f"no quantisation-aware copy of {type(layer).__name__} layer {layer.name}")
        tensors[layer.name] = y
    x = layers.GlobalAveragePooling2D(name="pool")(tensors[base.layers[-1].name])
    x = layers.Dropout(dropout, name="dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    p_machine = layers.Activation("sigmoid", name="p_machine")(logit)
    twin = keras.Model(inputs, layers.Reshape((), name="p")(p_machine), name=name)
    for folded, (kernel, bias), trainable in copies:
        folded.kernel.assign(kernel)
        folded.bias.assign(bias)
        folded.trainable = trainable
    twin.get_layer("logit").set_weights(model.get_layer("logit").get_weights())
    return twin, quantised


def calibrate_ranges(model: keras.Model, twin: keras.Model, images, max_batches: int = 16) -> int:
    """Set every :class:`FakeQuant` range of ``twin`` from the float network's activations.

    The range of each quantised tensor is the mean over batches of its batch minimum and maximum
    (the moving-average rule of quantisation-aware training), widened to contain 0. ``images``:
    a dataset of image batches, or of ``(images, labels)``. Returns the number of batches used.
    """
    import tensorflow as tf

    float_twin, probes = quantisation_aware(model, quantise=False)
    probe = keras.Model(float_twin.input, probes)
    quantisers = [layer for layer in twin.layers if isinstance(layer, FakeQuant)]
    low, high, used = np.zeros(len(quantisers)), np.zeros(len(quantisers)), 0

    # One traced graph that returns each tensor's minimum and maximum: calling the probe eagerly
    # kept about 280 MB more resident (a demo-sized twin) for its 60-odd full activations a batch.
    @tf.function(input_signature=[tf.TensorSpec([None, *probe.input.shape[1:]], probe.input.dtype)])
    def batch_ranges(batch):
        outputs = probe(batch, training=False)
        return tf.stack([tf.reduce_min(o) for o in outputs]), tf.stack([tf.reduce_max(o) for o in outputs])

    for batch in images.take(max_batches):
        batch = batch[0] if isinstance(batch, tuple) else batch
        batch_low, batch_high = batch_ranges(batch)
        low += np.asarray(batch_low, np.float64)
        high += np.asarray(batch_high, np.float64)
        used += 1
    if not used:
        raise ValueError("no images to calibrate the int8 ranges on")
    for quantiser, lo, hi in zip(quantisers, low / used, high / used):
        lo, hi = min(lo, 0.0), max(hi, lo + 1e-3, 1e-3)
        # zero on a level, decided here: left to fake_quant (float32) and the converter (float64),
        # a zero point at x.5 (a range of [-1, 1]) rounded one way in each, and TFLite clipped one
        # level lower than the twin
        step = (hi - lo) / 255
        zero = np.floor(-lo / step + 0.5)
        quantiser.minimum.assign(-zero * step)
        quantiser.maximum.assign((255 - zero) * step)
    parents = _parents(twin)
    children = {name: [child for child, its in parents.items() if name in its] for name in parents}
    for conv in (layer for layer in twin.layers if isinstance(layer, FoldedConv)):
        source = twin.get_layer(parents[conv.name][0])
        while not isinstance(source, FakeQuant):  # through zero padding
            source = twin.get_layer(parents[source.name][0])
        target = twin.get_layer(children[conv.name][0])
        while not isinstance(target, FakeQuant):  # through its ReLU6
            target = twin.get_layer(children[target.name][0])
        conv.input_scale.assign(_scale(source))
        conv.output_scale.assign(_scale(target))
    for add in (layer for layer in twin.layers if isinstance(layer, QuantisedAdd)):
        first, second = (twin.get_layer(name) for name in parents[add.name])
        add.scales.assign([_scale(first), _scale(second), _scale(twin.get_layer(children[add.name][0]))])
    return used


def _scale(quantiser: FakeQuant) -> float:
    """The step of a :class:`FakeQuant` range (TFLite's scale of that tensor)."""
    return (float(quantiser.maximum.numpy()) - float(quantiser.minimum.numpy())) / 255
