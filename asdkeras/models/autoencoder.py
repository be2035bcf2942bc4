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

LOSSES = ("mse", "oe", "oe-hinge")
"""mse: plain ("clear") AE on normals; oe: the report's |y - e(x)|; oe-hinge: e(x) on normals,
max(0, margin - e(x)) on outliers."""


@keras.saving.register_keras_serializable(package="asdkeras")
class ReconstructionError(layers.Layer):
    """Mean over the last axis of the squared difference of two tensors."""

    def call(self, target, reconstruction):
        return ops.mean(ops.square(target - reconstruction), axis=-1)


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
