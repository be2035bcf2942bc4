"""Running a Keras model over many clips: one traced graph per model, whatever the batch sizes.

``keras.Model.predict`` traces its step function for the first batch's shape, then again with a
free batch dimension when the last, shorter batch arrives, and runs each step through the
distribution machinery. Every detector, twin and ensemble is scored once or a few times on a
few hundred clips, so those traces were most of the time: scoring 60 clips with MobileNetV2's
int8 twin took 82 s with ``predict`` and 30 s with one function traced for any batch size (the
same scores to the bit). :func:`predict` is that function, kept on the model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

_TRACED = "_asdkeras_inference"


def _traced(model) -> tf.types.experimental.GenericFunction:
    """The model's inference function, traced once for inputs with a free batch dimension."""
    function = getattr(model, _TRACED, None)
    if function is None:
        specs = [tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype) for tensor in model.inputs]
        function = tf.function(lambda *inputs: model(list(inputs) if len(inputs) > 1 else inputs[0], training=False),
                               input_signature=specs)
        object.__setattr__(model, _TRACED, function)
    return function


def predict(model, data, batch_size: int = 32):
    """The model's outputs (numpy, float as the model computes them) over a dataset of input batches or an array.

    Parameters
    ----------
    model : keras.Model
    data : tf.data.Dataset or array
        Batches of inputs (what ``model.predict`` takes), or one array of inputs, run ``batch_size`` at a time.

    Returns
    -------
    array, or a list of arrays for a model of several outputs, one row per input.
    """
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(batch_size)
    function = _traced(model)
    parts = [function(*(batch if isinstance(batch, (tuple, list)) else (batch,))) for batch in data]
    if not parts:
        empty = [np.zeros((0, *t.shape[1:]), t.dtype) for t in model.outputs]
        return empty if len(empty) > 1 else empty[0]
    if isinstance(parts[0], (list, tuple)):
        return [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(len(parts[0]))]
    return np.concatenate([np.asarray(p) for p in parts])
