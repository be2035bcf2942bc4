"""Keras layers that turn per-frame features into one clip score inside the model graph.

Keeping the clip score in the graph means Python scoring, the TFLite export and the ensemble
run one and the same computation. Every op here converts to a TFLite builtin (strided slice,
concatenation, reshape, mean).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from asdkeras.features import LogMelConfig, stack_frames


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
