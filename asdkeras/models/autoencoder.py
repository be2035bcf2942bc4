"""The DCASE 2022 baseline dense autoencoder, with outlier-exposure losses.

Reference: Dohi et al., "Description and discussion on DCASE 2022 challenge task 2", 2022
(baseline AE); Kazakova et al., DCASE 2022 technical report (outlier exposure, Eq. 1).

The model maps a log-mel vector to its reconstruction error ``e(x)``: the mean squared
difference between the normalised input and its reconstruction. Normalisation is the first
layer, so a saved model needs nothing else to score raw feature vectors. Training losses are
functions of ``(y, e)`` with ``y`` = 0 for the machine's own clips and 1 for outliers.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from asdkeras.models.autoencoder_choices import ERROR_POOLINGS, LOSSES


@keras.saving.register_keras_serializable(package="asdkeras")
class ReconstructionError(layers.Layer):
    """Mean over the last axis of the squared difference of two tensors."""

    def call(self, target, reconstruction):
        return ops.mean(ops.square(target - reconstruction), axis=-1)


@keras.saving.register_keras_serializable(package="asdkeras")
class ClipPooling(layers.Layer):
    """``(clips * vectors,)`` per-vector values -> one ``(clips,)`` tensor per GWRP decay, pooled over each clip's vectors."""

    def __init__(self, vectors_per_clip: int, decays, **kwargs):
        super().__init__(**kwargs)
        self.vectors_per_clip = int(vectors_per_clip)
        self.decays = [float(d) for d in decays]

    def call(self, values):
        from asdkeras.models.gmm import gwrp_pool

        pooled = gwrp_pool(ops.reshape(values, (-1, self.vectors_per_clip, 1)), self.decays)
        return [pooled[:, i] for i in range(len(self.decays))]

    def compute_output_shape(self, input_shape):
        return [(None,)] * len(self.decays)

    def get_config(self):
        return {**super().get_config(), "vectors_per_clip": self.vectors_per_clip, "decays": self.decays}


def build_autoencoder(input_dim: int = 640, mean: np.ndarray | None = None, variance: np.ndarray | None = None,
                      hidden_units: int = 128, hidden_layers: int = 4, bottleneck_units: int = 8,
                      name: str = "autoencoder") -> keras.Model:
    """Dense autoencoder returning the per-vector reconstruction error.

    Parameters
    ----------
    input_dim : int
        Vector size (640 = 128 mels x 5 frames).
    mean, variance : array of shape (input_dim,), optional
        Per-dimension statistics of the training normals; identity when omitted.
    hidden_units, hidden_layers, bottleneck_units : int
        The baseline: 4 x Dense128-BN-ReLU, Dense8-BN-ReLU, 4 x Dense128-BN-ReLU, Dense640.

    Returns
    -------
    keras.Model
        Input ``(batch, ..., input_dim)``, output ``(batch, ...)``: the error of each vector.
    """
    inputs = keras.Input((input_dim,), name="vectors")
    mean = np.zeros(input_dim) if mean is None else np.asarray(mean)
    variance = np.ones(input_dim) if variance is None else np.asarray(variance)
    normalised = layers.Normalization(mean=mean.astype("float32"), variance=variance.astype("float32"),
                                      name="normalise")(inputs)
    x = normalised
    widths = [hidden_units] * hidden_layers + [bottleneck_units] + [hidden_units] * hidden_layers
    for i, width in enumerate(widths):
        x = layers.Dense(width, name=f"dense_{i}")(x)
        x = layers.BatchNormalization(name=f"bn_{i}")(x)
        x = layers.ReLU(name=f"relu_{i}")(x)
    reconstruction = layers.Dense(input_dim, name="reconstruction")(x)
    error = ReconstructionError(name="error")(normalised, reconstruction)
    return keras.Model(inputs, error, name=name)


def autoencoder_scoring_model(network: keras.Model, frames_per_clip: int = 313, n_mels: int = 128,
                              n_frames: int = 5, pooling: str = "mean", name: str = "autoencoder_score") -> keras.Model:
    """Log-mel frames of clips -> raw clip scores: each clip's vector errors pooled over time.

    Parameters
    ----------
    network : keras.Model
        A model from :func:`build_autoencoder` (vector -> its error).
    frames_per_clip, n_mels : int
        Input shape per clip: centred log-mel frames and mel bands (313 x 128 for 10 s).
    n_frames : int
        Frames stacked per vector (5: 640-dimensional vectors, 309 per clip).
    pooling : str
        A key of :data:`ERROR_POOLINGS`: ``mean`` (one score, the clip-mean error) or ``mean+peak``.

    Returns
    -------
    keras.Model
        Input ``(clips, frames_per_clip, n_mels)`` log-mel dB, output ``(clips,)`` scores, one
        output per view of ``pooling``.
        It holds an uncompiled copy of ``network`` (same weights): a compiled one would carry
        its training loss into the saved file, where loading it needs the loss function.
    """
    from asdkeras.models.layers import ClipMean, MergeClips, StackFrames

    copy = keras.models.clone_model(network)
    copy.set_weights(network.get_weights())
    network = copy
    frames = keras.Input((frames_per_clip, n_mels), name="logmel")
    vectors = StackFrames(n_frames, name="stack_frames")(frames)
    errors = network(MergeClips(name="merge_clips")(vectors))
    if pooling not in ERROR_POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(ERROR_POOLINGS)}. Received: pooling={pooling!r}")
    vectors_per_clip = frames_per_clip - n_frames + 1
    if ERROR_POOLINGS[pooling] == (1.0,):
        return keras.Model(frames, ClipMean(vectors_per_clip, name="clip_score")(errors), name=name)
    views = ClipPooling(vectors_per_clip, ERROR_POOLINGS[pooling], name="clip_score")(errors)
    return keras.Model(frames, views, name=name)


def autoencoder_loss(kind: str = "oe", margin: float = 1.0):
    """Training loss on ``(y, e)``: see :data:`LOSSES`. ``margin`` is the hinge's m (normalised units)."""
    if kind == "mse":
        def loss(y, error):
            return error
    elif kind == "oe":
        def loss(y, error):
            return ops.abs(y - error)
    elif kind == "oe-hinge":
        def loss(y, error):
            return (1.0 - y) * error + y * ops.relu(margin - error)
    else:
        raise ValueError(f"unknown loss '{kind}'; use one of {', '.join(LOSSES)}")
    loss.__name__ = f"{kind.replace('-', '_')}_loss"
    return loss


def autoencoder_descriptor() -> layers.Layer:
    """Log-mel frames ``(batch, frames, bands)`` -> the clip's band means ``(batch, bands)``: which operating
    condition it sounds like (:mod:`asdkeras.models.conditions`)."""
    from asdkeras.models.gmm import GWRPooling

    return GWRPooling([1.0], name="gwrp_condition")
