"""Keras layers that turn per-frame features into one clip score inside the model graph.

Keeping the clip score in the graph means Python scoring, the TFLite export and the ensemble
run one and the same computation. Every op here converts to a TFLite builtin (strided slice,
concatenation, reshape, mean).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from asdkeras.features import LogMelConfig, stack_frames
import tensorflow as tf

from asdkeras.frontend import GRAPH_SCOPE, frontend_from_settings


@keras.saving.register_keras_serializable(package="asdkeras")
class StackFrames(layers.Layer):
    """``(batch, frames, bands)`` -> ``(batch, frames - n + 1, n * bands)``: ``n`` consecutive frames per vector.

    :func:`asdkeras.features.stack_frames`, the stacking of the training pipeline, as a layer.
    """

    def __init__(self, n_frames: int, **kwargs):
        super().__init__(**kwargs)
        self.n_frames = int(n_frames)

    def call(self, frames):
        return stack_frames(frames, LogMelConfig(n_mels=frames.shape[-1], n_frames=self.n_frames))

    def compute_output_shape(self, input_shape):
        batch, frames, bands = input_shape
        return batch, frames - self.n_frames + 1, bands * self.n_frames

    def get_config(self):
        return {**super().get_config(), "n_frames": self.n_frames}


@keras.saving.register_keras_serializable(package="asdkeras")
class MergeClips(layers.Layer):
    """``(clips, vectors, dim)`` -> ``(clips * vectors, dim)``, so a per-vector network sees plain vectors."""

    def call(self, vectors):
        return ops.reshape(vectors, (-1, vectors.shape[-1]))

    def compute_output_shape(self, input_shape):
        return None, input_shape[-1]


@keras.saving.register_keras_serializable(package="asdkeras")
class ClipMean(layers.Layer):
    """``(clips * vectors,)`` per-vector values -> ``(clips,)``: their mean over each clip's vectors."""

    def __init__(self, vectors_per_clip: int, **kwargs):
        super().__init__(**kwargs)
        self.vectors_per_clip = int(vectors_per_clip)

    def call(self, values):
        return ops.mean(ops.reshape(values, (-1, self.vectors_per_clip)), axis=1)

    def compute_output_shape(self, input_shape):
        return (None,)

    def get_config(self):
        return {**super().get_config(), "vectors_per_clip": self.vectors_per_clip}


@keras.saving.register_keras_serializable(package="asdkeras")
class Frontend(layers.Layer):
    """``(batch, clip_samples)`` waveforms -> the features of a detector's front-end, in the graph.

    ``settings`` is the front-end's :meth:`settings` document; its constants are pinned
    (:func:`asdkeras.features.pinned_constant`) so TFLite quantisation leaves them exact.
    """

    def __init__(self, settings: dict, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.settings = dict(settings)
        self.frontend = frontend_from_settings(self.settings)

    def call(self, waveforms):
        with tf.name_scope(GRAPH_SCOPE):
            return self.frontend.from_waveforms(waveforms, pin=True)

    def compute_output_shape(self, input_shape):
        return input_shape[0], *self.frontend.input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "settings": self.settings}


@keras.saving.register_keras_serializable(package="asdkeras")
class Standardise(layers.Layer):
    """Clip scores ``(batch,)`` -> ``(score - mean) / std``, in units of the normal scores' spread."""

    def __init__(self, mean: float, std: float, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = float(mean), float(std)

    def call(self, scores):
        # The mean as a float16-exact part plus the rest: the float16 TFLite variant stores
        # constants in float16, whose rounding of the mean alone (2.4e-4 at 0.4) is 4 % of an
        # autoencoder's normal spread; the rest is small, so its rounding is not.
        high = float(np.float16(self.mean)) if abs(self.mean) < 6e4 else 0.0
        return (scores - high - (self.mean - high)) / self.std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package="asdkeras")
class CombineScores(layers.Layer):
    """A list of ``(batch,)`` scores -> their mean, max or min, ``(batch,)``."""

    REDUCTIONS = {"mean": ops.mean, "max": ops.max, "min": ops.min}

    def __init__(self, how: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if how not in self.REDUCTIONS:
            raise ValueError(f"combine scores by {', '.join(self.REDUCTIONS)}. Received: how={how!r}")
        self.how = how

    def call(self, scores):
        return self.REDUCTIONS[self.how](ops.stack(scores, axis=1), axis=1)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "how": self.how}
