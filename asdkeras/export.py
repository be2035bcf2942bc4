"""TFLite export of a detector: every quantisation variant, feature-in and waveform-in, with sidecars.

For each variant two files (and a JSON sidecar beside each):

* ``<machine>_<kind>_<quant>.tflite``: features of one clip (the detector's front-end output) -> clip score;
* ``<machine>_<kind>_<quant>_waveform.tflite``: ``clip_samples`` float32 samples at ``sample_rate`` Hz ->
  clip score, the feature front-end inside the graph, so an app needs no audio library.

Both have one SignatureDef, ``score``. Conversion goes through ``keras.export.ExportArchive`` and
``TFLiteConverter.from_saved_model`` (``from_keras_model`` fails on Keras 3 models with batch norm).

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
  front-end.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

import asdkeras
from asdkeras import detectors
from asdkeras.atomic import write_bytes, write_json
from asdkeras.detector import SCORE_DIRECTION, Detector
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.frontend import GRAPH_SCOPE
from asdkeras.kinds import CONVERTED_FROM_VARIANT, INTEGER_QUANTISATIONS, QUANTISATIONS
from asdkeras.names import (CACHE_DIR, CONFIG_FILE, DETECTOR_FILE, DEV_DATA, VARIANTS, metrics_path, sidecar_path,
                            tflite_name, variant_result_name)

SIGNATURE = "score"
SHARED_FLOAT_TAIL = ("/merge_clips", "/gwrp", "/standardise", "/gmm_nll", "/fuse_scores")
"""Tensor-name parts kept float in int8 models (with the front-end scope) whatever the kind: the
clip merging of long clips, and the pooling, mixture, standardisation and fusion layers that judge
a score in its operating condition (:mod:`asdkeras.models.conditions`) and fuse scores. Each kind
adds its own (:attr:`asdkeras.detectors.DetectorKind.float_tail`)."""


@dataclass(frozen=True)
class ExportedFile:
    """One exported model and its sidecar."""

    path: str
    sidecar: str
    quantisation: str
    waveform: bool


def _saved_model(detector: Detector, waveform: bool, folder: str) -> str:
    """Write the scoring graph (front-end inside when ``waveform``) as a SavedModel with one endpoint."""
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


def _has_float_stage(model) -> bool:
    """Whether a Keras scoring model holds a Gaussian-mixture stage (float only), nested models included."""
    from asdkeras.models.gmm import GaussianMixtureNLL

    return any(isinstance(layer, GaussianMixtureNLL) or (hasattr(layer, "layers") and _has_float_stage(layer))
               for layer in model.layers)


def _integer_tensor_count(model_content: bytes) -> int:
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


KERNELS_REASON = {
    "builtin": "int8 tensors: TFLite's builtin kernels, the arithmetic the converter and the int8 twin follow "
               "(LiteRT's default XNNPack delegate rounds int8 differently and can flip decisions near the threshold)",
    "xnnpack": "float computation: the runtime's default (XNNPack where it applies) agrees with the builtin kernels "
               "to float rounding",
}
"""Why a sidecar recommends the kernels it does (see BENCHMARKS.md, "Edge runtime")."""


def sidecar(detector: Detector, quantisation: str, waveform: bool, model_content: bytes, int8_io: bool,
            official_score: float | None) -> dict:
    """The JSON document written beside a ``.tflite`` file: everything an app needs to use it."""
    frontend = detector.frontend.settings()
    integer = _integer_tensor_count(model_content)
    float_tail = "" if int8_io and not waveform else "; front-end and score tail float32"
    if detector.info.get("quantisation_aware"):
        network = "MobileNetV2 member" if "ensemble" in detector.info else "network"
        others = "; the other members, " if "ensemble" in detector.info else "; input, "
        precision = (f"int8 {network}, quantisation-aware (the detector's int8/ twin, fine-tuned with int8 weights "
                     f"and activations; its dynamic and int8 files are the same conversion){others}"
                     f"front-end and score tail float32")
    elif not integer and quantisation in INTEGER_QUANTISATIONS:
        precision = "float32 throughout: the whole model is front-end and score tail"
    else:
        precision = {"float32": "float32", "float16": "float16 weights, float32 compute",
                     "dynamic": "int8 weights, float32 activations (hybrid)",
                     "int8": "int8 network" + float_tail}[quantisation]
    return {
        "format": 1,
        "signature": SIGNATURE,
        "machine": detector.machine,
        "kind": detector.kind,
        "quantisation": quantisation,
        "precision": precision,
        "input": "waveform" if waveform else "features",
        "kernels": "builtin" if integer else "xnnpack",
        "kernels_reason": KERNELS_REASON["builtin" if integer else "xnnpack"],
        **io_details(model_content),
        "sample_rate": frontend["sample_rate"],
        "clip_samples": frontend["clip_samples"],
        "frontend": frontend,
        "frontend_in_model": waveform,
        "waveform_range": [-1.0, 1.0] if waveform else None,
        "threshold": detector.threshold,
        "threshold_rule": detector.threshold_rule,
        "threshold_description": detector.thresholds[detector.threshold_rule]["description"],
        "score_units": detector.score_units,
        "score_direction": SCORE_DIRECTION,
        "decision": "anomaly when score > threshold",
        "normal_scores": detector.normal_scores,
        **({"ensemble": {k: detector.info["ensemble"][k] for k in ("mode", "combine", "members", "reason")}}
           if "ensemble" in detector.info else {}),
        "official_score": official_score,
        "asdkeras_version": asdkeras.__version__,
    }


def export_detector(detector: Detector, out_dir: str, quantisations: Iterable[str] = QUANTISATIONS,
                    features: Callable[[], Iterable[np.ndarray]] | None = None,
                    waveforms: Callable[[], Iterable[np.ndarray]] | None = None,
                    int8_io: bool = False, official_score: float | None = None,
                    announce: Callable[[str], None] = lambda name: None,
                    variant_scores: dict[str, float | None] | None = None) -> list[ExportedFile]:
    """Export ``detector`` in each quantisation, feature-in and waveform-in, each with its sidecar.

    A detector whose front-end is the waveform itself (the ensemble) gets the waveform model only.

    Parameters
    ----------
    detector : Detector
        With its variants (``Detector.load(folder, variants=True)``): a quantisation of
        :data:`~asdkeras.kinds.CONVERTED_FROM_VARIANT` is converted from the variant named there
        when the detector has it (MobileNetV2's quantisation-aware ``int8`` twin: no calibration),
        with the variant's threshold in its sidecar.
    out_dir : str
        Folder for the ``.tflite`` files and their ``.json`` sidecars (written atomically).
    quantisations : iterable of str
        Any of :data:`QUANTISATIONS`.
    features, waveforms : callable, optional
        Return iterables of representative inputs for int8 calibration: features of one clip
        ``frontend.input_shape``, or waveforms ``(clip_samples,)`` float32. Needed for ``int8``.
    int8_io : bool
        int8 input and output for the int8 feature model (not for a quantisation-aware twin's,
        whose input scaling stays float).
    official_score : float, optional
        The Keras detector's official score on its test split, recorded in the sidecars.
    variant_scores : dict, optional
        Variant name -> its official score, for the sidecars of the files converted from it.
    """
    if int8_io and "int8" in quantisations and _has_float_stage(detector.model):
        raise AsdError(f"{detector.machine}/{detector.kind}: --int8-io makes every op integer, but this detector "
                       f"judges clips per operating condition with Gaussian mixtures, which need float; export "
                       f"int8 without --int8-io (int8 network, float input, output and score tail)")
    written = []
    variants = ((True, waveforms),) if detector.frontend.reads_waveforms else ((False, features), (True, waveforms))
    with tempfile.TemporaryDirectory(prefix="asdkeras-export-") as tmp:
        for waveform, source in variants:
            saved = _saved_model(detector, waveform, os.path.join(tmp, "float"))
            variant_saved = {}
            key = "waveform" if waveform else "features"

            def representative(source=source, key=key):
                for item in source():
                    yield {key: np.asarray(item, np.float32)[np.newaxis]}

            float_model = None
            for quantisation in quantisations:
                name = tflite_name(detector.machine, detector.kind, quantisation, waveform)
                announce(name)
                variant = CONVERTED_FROM_VARIANT.get(quantisation)
                if variant in detector.variants:
                    exported, score = detector.variants[variant], (variant_scores or {}).get(variant)
                    if variant not in variant_saved:
                        variant_saved[variant] = _saved_model(exported, waveform, os.path.join(tmp, variant))
                    content = convert(variant_saved[variant], quantisation,
                                      quantisation_aware=bool(exported.info.get("quantisation_aware")))
                else:
                    if quantisation == "int8" and source is None:
                        raise AsdError(f"{name}: int8 needs representative {key}; pass the training data")
                    float_model = float_model or convert(saved, "float32")
                    content = convert(saved, quantisation, representative if source else None,
                                      int8_io and not waveform, float_model)
                    exported, score = detector, official_score
                path = os.path.join(out_dir, name)
                write_bytes(path, content)
                side = write_json(sidecar_path(path),
                                  sidecar(exported, quantisation, waveform, content, int8_io, score))
                written.append(ExportedFile(path, side, quantisation, waveform))
    return written


def representative_inputs(detector: Detector, data_dir: str, subset: str, cache_dir: str,
                          count: int = 200, seed: int = 0):
    """Calibration inputs from real training clips: ``(features, waveforms)``.

    The clips the network was trained on: the machine's normals and, with outlier exposure, as
    many clips of its outlier type (3 of 4 and 1 of 4 when there are outliers), so the calibrated
    ranges also cover sounds unlike the machine's, where anomalies lie. Each is a callable
    returning an iterable: ``count`` clips as features (from the feature cache), half as many as
    waveforms (decoded; calibrating a waveform model also runs its float front-end).
    """
    from asdkeras.data.layout import random_subset, scan_split, select
    from asdkeras.decoding import waveform_dataset

    rng = np.random.default_rng(seed)

    def sample(machine: str, size: int) -> list[str]:
        clips = select(scan_split(data_dir, machine, "train", subset), label="normal")
        return [r.path for r in random_subset(clips, size, rng)]

    outlier = detector.info.get("outlier")
    chosen = sample(detector.machine, count * 3 // 4 if outlier else count)
    if outlier:
        chosen += sample(outlier, count - len(chosen))
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]  # mixed, so the waveform half has both
    skipped = SkippedFiles()  # calibration needs enough clips, not every one: unreadable ones are left out
    cache_paths = detector.frontend.cache(cache_dir).ensure(chosen, skipped=skipped)
    chosen = [p for p in chosen if p not in skipped]

    def features():
        for batch in detector.frontend.dataset(cache_paths):
            yield from batch.numpy()

    def waveforms():
        for clip in waveform_dataset(chosen[:max(1, len(chosen) // 2)], channel=detector.frontend.channel):
            yield clip.numpy()

    return features, waveforms


def export_folder(folder: str, out_dir: str, quantisations: Iterable[str] = QUANTISATIONS, cache_dir: str = CACHE_DIR,
                  data_dir: str | None = None, int8_io: bool = False, official_score: float | None = None,
                  announce: Callable[[str], None] = lambda name: None,
                  variant_scores: dict[str, float | None] | None = None) -> tuple[Detector, list[ExportedFile]]:
    """Export the saved detector in ``folder``: load it and, for int8, calibrate on its training data.

    A detector with a quantisation-aware ``int8`` variant has its integer files converted from
    it instead, with no calibration. ``data_dir`` overrides the dataset root recorded in the
    detector's ``config.json``.
    """
    import json

    detector = Detector.load(folder, variants=True)
    calibration = (None, None)
    if "int8" in quantisations and CONVERTED_FROM_VARIANT["int8"] not in detector.variants:
        with open(os.path.join(folder, CONFIG_FILE)) as handle:
            config = json.load(handle)
        calibration = representative_inputs(detector, data_dir or config["data_dir"],
                                            config.get("subset", DEV_DATA), cache_dir)
    return detector, export_detector(detector, out_dir, quantisations, *calibration, int8_io=int8_io,
                                     official_score=official_score, announce=announce,
                                     variant_scores=variant_scores)


def saved_detectors(models_dir: str, machines: Iterable[str] | None, kinds: Iterable[str]) -> list[str]:
    """Folders ``<models_dir>/<machine>/<kind>`` holding a detector, for the given machines (None: all)."""
    if not os.path.isdir(models_dir):
        raise AsdError(f"{models_dir}: no such folder; train detectors first with 'python cli.py fit'")
    machines = sorted(machines) if machines else sorted(d for d in os.listdir(models_dir)
                                                        if os.path.isdir(os.path.join(models_dir, d)))
    found = [os.path.join(models_dir, m, k) for m in machines for k in kinds
             if os.path.isfile(os.path.join(models_dir, m, k, DETECTOR_FILE))]
    if not found:
        raise AsdError(f"{models_dir}: no saved detector of model {'/'.join(kinds)} for "
                       f"{', '.join(machines) or 'any machine'}; train one with 'python cli.py fit'")
    return found


def variant_scores_of(result_dir: str, kind: str, machine: str) -> dict[str, float | None]:
    """Variant name -> the official score ``test`` wrote for that variant of ``kind`` (None where it has none)."""
    return {name: official_score_of(result_dir, variant_result_name(kind, name), machine) for name in VARIANTS}


def official_score_of(result_dir: str, kind: str, machine: str) -> float | None:
    """The official score in ``<result_dir>/metrics_<kind>_<machine>.json`` (written by ``test``), if any."""
    import json

    path = metrics_path(result_dir, kind, machine)
    try:
        with open(path) as handle:
            return float(json.load(handle)["official_score"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
