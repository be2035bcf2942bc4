"""ImageNet-pretrained MobileNetV2 with a binary head: "this machine" against outlier clips.

Reference: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018;
Kazakova et al., DCASE 2022 technical report, sections 2.1-2.2 (spectrogram images, outlier
exposure, fine-tuning).

Input: spectrogram images with pixel values in [0, 255] (``features.spectrogram_image``). The
model applies ``mobilenet_v2.preprocess_input``'s scaling (x / 127.5 - 1) itself, so the same
model serves training, testing and TFLite export. Output: p(this machine) in (0, 1).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings

import keras
from keras import layers, ops

from asdkeras.errors import AsdError

IMAGENET_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
"""MobileNetV2 width multipliers (alpha) for which Keras publishes ImageNet weights."""


KERAS_SIZES = (96, 128, 160, 192, 224)
"""Image sizes with their own published weight files; any other size loads the 224 file."""


def imagenet_weights_file(width: float, image_size: int = 224) -> str:
    """Keras' file name for the no-top ImageNet weights at this width and size."""
    rows = image_size if image_size in KERAS_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(width)}_{rows}_no_top.h5"


def keras_cache_dir() -> str:
    """Where Keras looks for downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return os.path.join(os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")), "models")


def _base(image_size: int, width: float, weights: str | None) -> keras.Model:
    if weights == "imagenet" and width not in IMAGENET_WIDTHS:
        raise AsdError(f"no ImageNet weights for MobileNetV2 width {width}; use one of "
                       f"{', '.join(map(str, IMAGENET_WIDTHS))} or --weights none")
    if weights == "imagenet":
        # No-top convolution weights do not depend on the input size, so where only the 224 file
        # is cached (offline machines) it serves every size, as Keras does for non-standard sizes.
        exact = os.path.join(keras_cache_dir(), imagenet_weights_file(width, image_size))
        fallback = os.path.join(keras_cache_dir(), imagenet_weights_file(width))
        if not os.path.isfile(exact) and os.path.isfile(fallback):
            weights = fallback
    elif weights is not None and not os.path.isfile(weights):
        raise AsdError(f"{weights}: no such weights file; pass --weights imagenet, none or the path of a no-top .h5")
    keras_output = io.StringIO()  # Keras prints "Downloading data from <url>" before it knows it fails
    try:
        with contextlib.redirect_stdout(keras_output):
            base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), alpha=width,
                                                  include_top=False, weights=weights)
        if weights == "imagenet" and "Downloading" in keras_output.getvalue():
            logging.getLogger("asdkeras").info(f"downloaded the ImageNet weights of MobileNetV2 width {width} "
                                               f"into {keras_cache_dir()}/")
        return base
    except Exception as exc:  # Keras raises a bare Exception when the download fails
        if weights == "imagenet":
            raise AsdError(f"no ImageNet weights for MobileNetV2 width {width} in {keras_cache_dir()}/ and the "
                           f"download failed (offline?); place {imagenet_weights_file(width)} there (the 224 file "
                           f"serves every image size; Keras' cache, set by KERAS_HOME; 'make weights' copies it from "
                           f"../shared/assets/keras-models/) or pass --weights PATH") from None
        raise AsdError(f"{weights}: cannot load these weights into MobileNetV2 width {width} "
                       f"({str(exc).splitlines()[0][:120]}); they must be a no-top .h5 of the same width") from None


def build_mobilenet(image_size: int = 320, width: float = 1.0, weights: str | None = "imagenet",
                    dropout: float = 0.2, name: str = "mobilenet_v2_detector") -> keras.Model:
    """MobileNetV2 feature extractor, global average pooling and a sigmoid unit.

    Parameters
    ----------
    image_size : int
        Input height and width in pixels (320 in the report).
    width : float
        Width multiplier alpha (1.0 full, 0.35 smallest with ImageNet weights).
    weights : "imagenet", None or a path
        ImageNet weights from Keras' cache (downloaded when online), random initialisation, or a
        no-top ``.h5`` file.
    dropout : float
        Dropout rate before the head.

    With pretrained weights the base starts frozen and is called in inference mode, so its
    batch-norm statistics stay those of ImageNet while its top blocks are fine-tuned (the usual
    Keras transfer-learning recipe). From a random initialisation (``weights=None``) nothing is
    worth keeping: the whole network trains, batch normalisation included; call
    :func:`recalibrate_batch_norm` after such a fit.
    """
    with warnings.catch_warnings():  # 320 px is not a published size: Keras says it loads the 224 weights
        warnings.filterwarnings("ignore", message=".*input_shape. is undefined or non-square.*")
        base = _base(image_size, width, weights)
    pretrained = weights is not None
    base.trainable = not pretrained
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_input")(inputs)
    x = base(x, training=False) if pretrained else base(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    p_machine = layers.Activation("sigmoid", name="p_machine")(logit)
    outputs = layers.Reshape((), name="p")(p_machine)
    return keras.Model(inputs, outputs, name=name)


def mobilenet_scoring_model(model: keras.Model, name: str = "mobilenet_score") -> keras.Model:
    """Images -> clip score -z, the negative logit of p(this machine) = sigmoid(z).

    The logit rather than 1 - p: near p = 1 a float32 ``1 - p`` collapses to ties, and an int8
    sigmoid output keeps only 256 levels, while the logit keeps the ranking in every variant.
    Shares its layers (and weights) with ``model``.
    """
    logit = layers.Reshape((), name="logit_flat")(model.get_layer("logit").output)
    return keras.Model(model.input, layers.Rescaling(-1.0, name="clip_score")(logit), name=name)


def base_network(model: keras.Model) -> keras.Model:
    """The MobileNetV2 base inside a training model, or inside a scoring model (which nests it once more)."""
    inner = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    return base_network(inner) if any(isinstance(layer, keras.Model) for layer in inner.layers) else inner


def unfreeze_top_blocks(model: keras.Model, blocks: int) -> int:
    """Make the last ``blocks`` inverted-residual blocks (and the final 1x1 conv) trainable.

    Batch-normalisation layers stay frozen. Returns the number of trainable base layers.
    """
    base = base_network(model)
    base.trainable = True
    first = f"block_{17 - blocks}_" if blocks > 0 else None
    trainable = False
    count = 0
    for layer in base.layers:
        if blocks > 0 and (layer.name.startswith(first) or layer.name.startswith("Conv_1")):
            trainable = True
        layer.trainable = trainable and not isinstance(layer, layers.BatchNormalization)
        count += int(layer.trainable and bool(layer.weights))
    return count


EAGER_BATCHES = 10
"""A training phase of at most this many batches (training and validation, over its epochs) runs
eagerly. Tracing a phase's train step into a graph costs 4.8-6.0 s of Python on one thread (the
head, the fine-tuning, the int8 twin; 0.35 width at 96 and 176 px), and a step run eagerly
0.3-0.55 s more than a traced one, so below 10-18 batches eager is faster, with the same weights
to float rounding (``benchmarks/eager_training.py``, BENCHMARKS.md "MobileNetV2 phases of a few
batches run eagerly"). Fits that small are those of a handful of clips and the tests' tiny
ones: 50 normals at the defaults make 18 to 45 batches a phase, the demo's and the report's
phases tens to hundreds, all traced."""


def runs_eagerly(batches: int) -> bool:
    """Whether a training phase of ``batches`` batches (training and validation, every epoch) runs
    eagerly rather than traced: :data:`EAGER_BATCHES`."""
    return batches <= EAGER_BATCHES


def recalibrate_batch_norm(model: keras.Model, images, max_batches: int = 50) -> int:
    """Recompute every batch-norm layer's moving statistics for the final weights ("precise BN").

    During a short fit from scratch the moving averages trail weights that change quickly, and
    across MobileNetV2's ~50 stacked batch-norm layers the mismatch compounds until inference
    gives one output for every input. This runs up to ``max_batches`` batches of ``images`` (a
    dataset of image batches, or of ``(images, labels)``) in training mode, weights untouched,
    and sets each layer's statistics to the cumulative average over them (Wu & Johnson,
    "Rethinking 'Batch' in BatchNorm", 2021). Returns the number of batches used.
    """
    norms = [layer for layer in base_network(model).layers if isinstance(layer, layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    used = 0
    try:
        for batch in images.take(max_batches):
            batch = batch[0] if isinstance(batch, tuple) else batch
            for layer in norms:
                layer.momentum = used / (used + 1)  # the first batch replaces, later ones average in
            model(batch, training=True)
            used += 1
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    return used


@keras.saving.register_keras_serializable(package="asdkeras")
class ImageSpectrum(layers.Layer):
    """Spectrogram images ``(batch, freq, time, channels)`` -> the time-averaged spectrum in ``bands`` bands.

    The clip descriptor that tells operating conditions apart (:mod:`asdkeras.models.conditions`):
    the first channel's rows (frequency bins) averaged over time, then over groups of adjacent
    rows, so a few dozen training clips can fit a mixture of it. ``bands`` must divide the
    image's height.
    """

    def __init__(self, bands: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.bands = int(bands)

    def call(self, images):
        spectrum = ops.mean(images[..., 0], axis=2)
        height = images.shape[1]
        return ops.mean(ops.reshape(spectrum, (-1, self.bands, height // self.bands)), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0], self.bands

    def get_config(self):
        return {**super().get_config(), "bands": self.bands}


def mobilenet_descriptor(image_size: int = 320) -> layers.Layer:
    """The :class:`ImageSpectrum` descriptor of ``image_size`` images: as many bands as fit in 64 that divide it."""
    bands = max(b for b in range(1, 65) if image_size % b == 0)
    return ImageSpectrum(bands, name="gwrp_condition")
