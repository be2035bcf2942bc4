"""TFLite conversion: a detector's scoring graph as a SavedModel endpoint, then TFLite bytes in one quantisation.

Conversion goes through ``keras.export.ExportArchive`` and ``TFLiteConverter.from_saved_model``
(``from_keras_model`` fails on Keras 3 models with batch norm). Every model has one
SignatureDef, ``score``.

Quantisation:

* ``float32``: as trained;
* ``float16``: weights stored as float16, computed in float32;
* ``dynamic``: weights int8, activations float (hybrid kernels);
* ``int8``: the network in full integer arithmetic, calibrated on a representative set of real
  training clips. The front-end (STFT, mel product, log) and the score tail (reconstruction
  error, clip mean, logit) stay float: their value ranges span many decades (mel power from
  1e-10 up), which 8 bits cannot hold, and RFFT2D, COMPLEX_ABS and LOG have float kernels only.
  With ``int8_io`` the feature model takes int8 features and returns an int8 score (scale and
  zero point in the sidecar); waveform models keep float I/O, since 8-bit audio would ruin the
  front-end. A quantisation-aware twin converts without calibration (its ranges are trained).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from typing import Callable, Iterable

import numpy as np

from asdkeras import detectors
from asdkeras.errors import AsdError
from asdkeras.frontend import GRAPH_SCOPE
from asdkeras.kinds import INTEGER_QUANTISATIONS, QUANTISATIONS

SIGNATURE = "score"
SHARED_FLOAT_TAIL = ("/merge_clips", "/gwrp", "/standardise", "/gmm_nll", "/fuse_scores")
"""Tensor-name parts kept float in int8 models (with the front-end scope) whatever the kind: the
clip merging of long clips, and the pooling, mixture, standardisation and fusion layers that judge
a score in its operating condition (:mod:`asdkeras.models.conditions`) and fuse scores. Each kind
adds its own (:attr:`asdkeras.detectors.DetectorKind.float_tail`)."""


def saved_model(detector, waveform: bool, folder: str) -> str:
    """Write a detector's scoring graph (front-end inside when ``waveform``) as a SavedModel with one endpoint."""
    import keras
    import tensorflow as tf

    from asdkeras.models.quantise import for_conversion

    frontend = detector.frontend
    archive = keras.export.ExportArchive()
    archive.track(detector.model)
    if waveform:
        signature = tf.TensorSpec((1, frontend.clip_samples), tf.float32, name="waveform")

        def score(waveform):
            with tf.name_scope(GRAPH_SCOPE):
                features = frontend.from_waveforms(waveform, pin=True)
            return {"score": detector.model(features, training=False)}
    else:
        signature = tf.TensorSpec((1, *frontend.input_shape), tf.float32, name="features")

        def score(features):
            return {"score": detector.model(features, training=False)}
    path = os.path.join(folder, "waveform" if waveform else "features")
    # traced in here: TFLite's int8 kernels round the outputs themselves; Keras prints a banner
    with for_conversion(detector.model), contextlib.redirect_stdout(io.StringIO()):
        archive.add_endpoint(SIGNATURE, score, input_signature=[signature])
        archive.write_out(path, verbose=False)
    return path


def frontend_model(frontend, quantisation: str = "float32") -> bytes:
    """The front-end alone as TFLite (waveform -> features), built as inside the waveform models.

    For parity tests against :mod:`asdkeras.features` and for profiling the front-end's share of
    the latency. ``int8`` is not offered: the front-end is never integer.
    """
    import tensorflow as tf

    if quantisation == "int8":
        raise AsdError("the front-end stays float in every variant; choose float32, float16 or dynamic")

    class Frontend(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, frontend.clip_samples), tf.float32, name="waveform")])
        def score(self, waveform):
            return {"features": frontend.from_waveforms(waveform, pin=True)}

    module = Frontend()
    with tempfile.TemporaryDirectory(prefix="asdkeras-frontend-") as tmp:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE: module.score})
        return convert(tmp, quantisation)


@contextlib.contextmanager
def _native_output_silenced():
    """Send the converter's native-code log lines ("Ignored output_format", "fully_quantize: 0 ...")
    to /dev/null: file descriptors 1 and 2, which Python's redirection cannot reach. Errors still
    surface as Python exceptions."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _keeps_float(name: str, tail: tuple[str, ...]) -> bool:
    return f"{GRAPH_SCOPE}/" in name or any(part in name for part in tail)


def _float_tensor_names(model_content: bytes) -> list[str]:
    """Names of the front-end and score-tail tensors of a float TFLite model (kept float in int8).

    The model's output belongs to the score tail, whatever its op is named (the converter names
    it after the signature, ``StatefulPartitionedCall:0``).
    """
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model_content)
    outputs = {d["name"] for d in interpreter.get_output_details()}
    tail = SHARED_FLOAT_TAIL + detectors.float_tail()
    return [d["name"] for d in interpreter.get_tensor_details()
            if _keeps_float(d["name"], tail) or d["name"] in outputs]


def _has_network(model_content: bytes) -> bool:
    """Whether any op of a float TFLite model lies outside the front-end and the score tail.

    A pooled-GMM detector is all front-end and score tail: quantising it only loses precision.
    """
    import tensorflow as tf

    keep = set(_float_tensor_names(model_content))
    interpreter = tf.lite.Interpreter(model_content=model_content)
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    return any(names[i] not in keep for op in interpreter._get_ops_details() for i in op["outputs"])


def convert(saved_model: str, quantisation: str, representative: Callable[[], Iterable[dict]] | None = None,
            int8_io: bool = False, float_model: bytes | None = None, quantisation_aware: bool = False) -> bytes:
    """Convert a SavedModel endpoint to TFLite bytes in one quantisation.

    ``float_model``: the endpoint's float32 TFLite model when already converted (the dynamic and
    int8 variants inspect it); converted here otherwise. ``quantisation_aware``: the endpoint is
    a quantisation-aware twin (:mod:`asdkeras.models.quantise`); its fake-quantisation ranges
    and weights make the int8 network, with no calibration (dynamic and int8 give that model).
    """
    if quantisation not in QUANTISATIONS:
        raise AsdError(f"unknown quantisation '{quantisation}'; use any of {', '.join(QUANTISATIONS)}")

    if quantisation_aware and quantisation not in INTEGER_QUANTISATIONS:
        raise AsdError(f"a quantisation-aware twin is exported as {' or '.join(INTEGER_QUANTISATIONS)} only, "
                       f"not {quantisation}; export the float detector for that")
    with _native_output_silenced():
        return _convert(saved_model, quantisation, representative, int8_io, float_model, quantisation_aware)


def _convert(saved_model: str, quantisation: str, representative, int8_io: bool, float_model: bytes | None,
             quantisation_aware: bool = False) -> bytes:
    import tensorflow as tf

    def converter():
        c = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[SIGNATURE])
        if quantisation != "float32":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantisation == "float16":
            c.target_spec.supported_types = [tf.float16]
        return c

    if quantisation_aware:  # the fake-quantisation ops set every range: no representative data
        return converter().convert()
    if quantisation == "float32":
        return float_model or converter().convert()
    if quantisation in INTEGER_QUANTISATIONS and not int8_io:
        float_model = float_model or _convert(saved_model, "float32", None, False, None)
        if not _has_network(float_model):
            return float_model
    if quantisation != "int8":
        return converter().convert()
    if representative is None:
        raise AsdError("int8 quantisation needs a representative dataset of training features")
    c = converter()
    c.representative_dataset = representative
    if int8_io:
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
        return c.convert()
    keep_float = _float_tensor_names(float_model)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=c, debug_dataset=representative,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float))
    return debugger.get_nondebug_quantized_model()


def has_float_stage(model) -> bool:
    """Whether a Keras scoring model holds a Gaussian-mixture stage (float only), nested models included."""
    from asdkeras.models.gmm import GaussianMixtureNLL

    return any(isinstance(layer, GaussianMixtureNLL) or (hasattr(layer, "layers") and has_float_stage(layer))
               for layer in model.layers)


def integer_tensor_count(model_content: bytes) -> int:
    """How many int8 tensors a TFLite model holds (0: it computes in float throughout)."""
    import tensorflow as tf

    details = tf.lite.Interpreter(model_content=model_content).get_tensor_details()
    return sum(np.dtype(d["dtype"]) == np.int8 for d in details)


def io_details(model_content: bytes) -> dict:
    """Input and output name, shape, dtype and (quantised I/O) scale and zero point of the ``score`` signature."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model_content)
    runner = interpreter.get_signature_runner(SIGNATURE)

    def describe(details: dict) -> dict:
        out = {}
        for name, d in details.items():
            scale, zero = d["quantization"]
            out[name] = {"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name}
            if scale:
                out[name].update(scale=float(scale), zero_point=int(zero))
        return out

    return {"inputs": describe(runner.get_input_details()), "outputs": describe(runner.get_output_details())}
