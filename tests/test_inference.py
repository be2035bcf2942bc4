"""models/inference.py: one traced function per model scores as keras' predict does, for any batch sizes."""

import keras
import numpy as np
import tensorflow as tf

from asdkeras.models.inference import predict


def _model(outputs: int = 1) -> keras.Model:
    frames = keras.Input((5, 3))
    hidden = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(frames))
    heads = [keras.layers.Dense(1)(hidden) for _ in range(outputs)]
    return keras.Model(frames, heads if outputs > 1 else heads[0])


def test_scores_equal_keras_predict_for_a_shorter_last_batch_traced_once():
    # Other batch sizes sum the matrix products in another order: equal to float32 rounding, not bits.
    model = _model()
    inputs = np.random.default_rng(0).normal(size=(11, 5, 3)).astype("float32")
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(predict(model, tf.data.Dataset.from_tensor_slices(inputs).batch(4)), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predict(model, inputs, batch_size=3), expected, rtol=1e-6, atol=1e-6)
    traced = model._asdkeras_inference
    assert traced.experimental_get_tracing_count() == 1  # batches of 4, 4, 3, 3 and 2 clips: one graph
    assert predict(model, inputs[:1]).shape == (1, 1) and model._asdkeras_inference is traced


def test_several_outputs_and_no_input_at_all():
    model = _model(outputs=2)
    inputs = np.ones((6, 5, 3), "float32")
    first, second = predict(model, inputs, batch_size=4)
    expected = model.predict(inputs, verbose=0)
    np.testing.assert_allclose(first, expected[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(second, expected[1], rtol=1e-6, atol=1e-6)
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 5, 3), "float32")).batch(4)
    assert [a.shape for a in predict(model, empty)] == [(0, 1), (0, 1)]
    assert predict(_model(), empty).shape == (0, 1)
