"""TFLite export of a detector: every quantisation, feature-in and waveform-in, each with its sidecar.

For each quantisation two files (and a JSON sidecar beside each):

* ``<machine>_<kind>_<quant>.tflite``: features of one clip (the detector's front-end output) -> clip score;
* ``<machine>_<kind>_<quant>_waveform.tflite``: ``clip_samples`` float32 samples at ``sample_rate`` Hz ->
  clip score, the feature front-end inside the graph, so an app needs no audio library.

How a graph becomes TFLite bytes, and what each quantisation keeps float, is
:mod:`asdkeras.conversion`; here: which graph (the detector's or its variant's), calibration
inputs from real training clips, and what an app needs to know (the sidecar).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

import asdkeras
from asdkeras.atomic import write_bytes, write_json
from asdkeras.conversion import SIGNATURE, convert, has_float_stage, integer_tensor_count, io_details, saved_model
from asdkeras.detector import SCORE_DIRECTION, Detector
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.kinds import CONVERTED_FROM_VARIANT, INTEGER_QUANTISATIONS, QUANTISATIONS
from asdkeras.names import (CACHE_DIR, CONFIG_FILE, DETECTOR_FILE, DEV_DATA, VARIANTS, metrics_path, sidecar_path,
                            tflite_name, variant_result_name)


@dataclass(frozen=True)
class ExportedFile:
    """One exported model and its sidecar."""

    path: str
    sidecar: str
    quantisation: str
    waveform: bool


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
    integer = integer_tensor_count(model_content)
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
        "intended_flag_share": detector.intended_flag_share,
        "score_units": detector.score_units,
        "score_direction": SCORE_DIRECTION,
        "decision": "anomaly when score > threshold",
        "normal_scores": detector.normal_scores,
        "calibrated_conditions": detector.info.get("calibrated_conditions", {}),
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
    if int8_io and "int8" in quantisations and has_float_stage(detector.model):
        raise AsdError(f"{detector.machine}/{detector.kind}: --int8-io makes every op integer, but this detector "
                       f"judges clips per operating condition with Gaussian mixtures, which need float; export "
                       f"int8 without --int8-io (int8 network, float input, output and score tail)")
    written = []
    variants = ((True, waveforms),) if detector.frontend.reads_waveforms else ((False, features), (True, waveforms))
    with tempfile.TemporaryDirectory(prefix="asdkeras-export-") as tmp:
        for waveform, source in variants:
            saved = saved_model(detector, waveform, os.path.join(tmp, "float"))
            variant_saved, variant_content = {}, {}
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
                    aware = bool(exported.info.get("quantisation_aware"))
                    if variant not in variant_saved:
                        variant_saved[variant] = saved_model(exported, waveform, os.path.join(tmp, variant))
                    # a quantisation-aware model converts to the same bytes whatever integer quantisation is asked
                    key = (variant, None if aware else quantisation)
                    if key not in variant_content:
                        variant_content[key] = convert(variant_saved[variant], quantisation, quantisation_aware=aware)
                    content = variant_content[key]
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

    from asdkeras.calibration import calibration_counts

    detector = Detector.load(folder, variants=True)
    counts = calibration_counts(folder, detector.info)  # conditions calibrated after the fit (python cli.py calibrate)
    for each in (detector, *detector.variants.values()):
        each.info = {**each.info, "calibrated_conditions": counts}
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
