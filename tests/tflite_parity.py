"""What the two TFLite export modules share: fitting and exporting a set of kinds, the parity bars,
and the edge runtime's environment (test_export.py: autoencoder and GMM; test_export_mobilenet.py:
MobileNetV2 with its int8 twin and an ensemble holding it; two modules, so that the two workers of
``make test`` share the exports).

Bars (issue 8): float32 scores equal to 1e-4 relative to the scores' largest magnitude (waveform-in
image models: 1e-3, and 1e-2 for up to 5 % of clips, :func:`assert_float_parity`); float16, dynamic and int8 a Spearman rank
correlation >= 0.98 with the Keras scores; dynamic and int8 the same decision on >= 98 % of
clips; float16 a largest score error within 5 % of the scores' range and decisions that differ
only for clips within that error of the threshold (scores judged per condition are in units of a
condition's normal spread, tight on these tiny fits, so float16's rounding of the weights moves
them by up to 0.6; the ensemble flipped 2-3 of 60 clips next to its threshold). Clips: all 60 of
the tiny generated set of a type (training and test), so one differing decision is 1.7 %.
"""

import json
import os
import subprocess

import numpy as np
import scipy.stats

from asdkeras.audio import load_clip
from asdkeras.data.layout import scan_split
from asdkeras.detector import Detector
from asdkeras.ensemble import fit_ensemble
from asdkeras.export import export_detector, representative_inputs
from asdkeras.fit import fit_detector, make_config
from asdkeras.kinds import INTEGER_QUANTISATIONS, QUANTISATIONS
from asdkeras.lite import LiteDetector
from asdkeras.names import INT8, sidecar_path
from conftest import REPO

SIZES = {"ae": dict(epochs=2, outlier="gearbox"), "gmm": dict()}
"""Fit settings of the kinds :func:`export_kinds` fits (MobileNetV2 comes fitted: the demo's, test_export_mobilenet.py)."""


def export_kinds(tiny_dataset: str, work, kinds: tuple[str, ...], ensemble_of: tuple[str, ...] = (),
                 fitted: tuple[str, ...] = (), machine: str = "fan") -> dict:
    """Fit ``kinds`` for ``machine`` (those in ``fitted`` are already saved under ``work/models``) and export
    every quantisation; with ``ensemble_of``, also the fused ensemble of those kinds (saved under
    ``work/models``, fitted, not exported themselves), saved in ``work/fused-ensemble``. Returns
    kind (``<kind>-int8`` for a variant) -> (Keras detector, folder of its exported files, clip
    paths, Keras scores)."""
    cache = str(work / "cache")
    paths = [r.path for split in ("train", "test") for r in scan_split(tiny_dataset, machine, split)]
    folder = str(work / "tflite")
    out = {}
    for kind in kinds:
        config = make_config(kind, machine=machine, data_dir=tiny_dataset, cache_dir=cache,
                             models_dir=str(work / "models"), **SIZES.get(kind, {}))
        if kind not in fitted:
            fit_detector(kind, config)
        detector = Detector.load(config.folder(), variants=True)
        twin = detector.variants.get(INT8)
        assert (twin is not None) == (kind == "mobilenet")
        features, waveforms = representative_inputs(detector, tiny_dataset, "dev_data", cache, count=48)
        export_detector(detector, folder, QUANTISATIONS, features, waveforms, official_score=0.5,
                        variant_scores={INT8: 0.25})
        out[kind] = (detector, folder, paths, detector.score_files(paths, cache))
        if twin is not None:  # the integer variants are its conversions
            out[f"{kind}-int8"] = (twin, folder, paths, twin.score_files(paths, cache))
    if ensemble_of:
        fused = fit_ensemble(machine, str(work / "models"), "fuse", kinds=ensemble_of, data_dir=tiny_dataset,
                             cache_dir=cache, output_dir=str(work / "fused-ensemble"))
        _, waveforms = representative_inputs(fused, tiny_dataset, "dev_data", cache, count=48)
        export_detector(fused, folder, QUANTISATIONS, None, waveforms)
        out["ensemble"] = (fused, folder, paths, fused.score_files(paths, cache))
        twin = fused.variants.get(INT8)  # with the MobileNetV2 member's twin
        if twin is not None:
            out["ensemble-int8"] = (twin, folder, paths, twin.score_files(paths, cache))
    return out


def reads_pixels(kind: str, waveform: bool) -> bool:
    """Whether a file computes whole-pixel spectrogram images from waveforms (MobileNetV2, or an
    ensemble holding it, waveform-in), where FFT rounding can flip a pixel."""
    return kind in ("mobilenet", "ensemble") and waveform


def float_bar(kind: str, waveform: bool) -> float:
    """Largest float32 score difference between two computations of one model, relative to the scores' scale.

    Spectrogram images hold whole pixel values: where two FFTs differ by 1e-6 at an x.5 boundary,
    a pixel differs by 1 (measured: TFLite against TensorFlow 2.4e-4 of the scale, LiteRT's XNNPack
    against tf.lite 1.6e-4). See :func:`assert_float_parity` for the few clips where that moves more.
    """
    return 1e-3 if reads_pixels(kind, waveform) else 1e-4


PIXEL_FLIP_BAR = 1e-2
"""A waveform-in image model's largest score difference on the few clips whose images differ by a
pixel, relative to the scores' scale. Measured 1.02e-3 (one of 60 clips; 30f9656, where a wider
target condition shrank the scores' scale by a quarter, not the error)."""


def assert_float_parity(scores, expected, kind: str, waveform: bool) -> None:
    """Two float32 computations of one model score alike: every clip within :func:`float_bar` of the
    scores' scale, except, for waveform-in image models, at most 5 % of clips (a pixel flipped by
    FFT rounding) within :data:`PIXEL_FLIP_BAR`."""
    scale = np.abs(expected).max()
    error = np.abs(np.asarray(scores) - np.asarray(expected))
    if reads_pixels(kind, waveform):
        assert np.mean(error > float_bar(kind, waveform) * scale) <= 0.05, error / scale
        np.testing.assert_allclose(scores, expected, rtol=0, atol=PIXEL_FLIP_BAR * scale)
    else:
        np.testing.assert_allclose(scores, expected, rtol=0, atol=float_bar(kind, waveform) * scale)


def check_variant_against_keras(exported: dict, kind: str, quantisation: str, waveform: bool) -> None:
    """A TFLite file against the Keras model it is converted from: the integer files of MobileNetV2
    and of an ensemble holding it against their quantisation-aware twins."""
    twin = f"{kind}-int8" in exported and quantisation in INTEGER_QUANTISATIONS
    detector, folder, paths, keras_scores = exported[f"{kind}-int8" if twin else kind]
    name = f"{detector.machine}_{kind}_{quantisation}{'_waveform' if waveform else ''}"
    lite = LiteDetector(os.path.join(folder, f"{name}.tflite"), threads=1)
    scores = np.array([lite.score_clip(load_clip(p)) for p in paths])
    print(f"{name}: Keras scores {keras_scores.min():.4g}..{keras_scores.max():.4g}, "
          f"max |TFLite - Keras| {np.abs(scores - keras_scores).max():.3g}, "
          f"Spearman {scipy.stats.spearmanr(scores, keras_scores)[0]:.4f}, same decision "
          f"{np.mean((scores > lite.threshold) == (keras_scores > detector.threshold)):.3f}")
    if quantisation == "float32":  # relative to the scores' scale (a logit near 0 has no relative error)
        assert_float_parity(scores, keras_scores, kind, waveform)
    else:
        assert scipy.stats.spearmanr(scores, keras_scores)[0] >= 0.98
        differ = (scores > lite.threshold) != (keras_scores > detector.threshold)
        if quantisation == "float16":
            # Float16 weights move a score by up to 0.6 of a condition's normal spread on these
            # 6-clip fits (tight spreads): a clip may change sides only within that error of the
            # threshold, and the error stays small against the scores' range.
            error = np.abs(scores - keras_scores).max()
            assert error <= 0.05 * np.ptp(keras_scores)  # measured up to 2.3 % (MobileNetV2)
            assert np.all(np.abs(keras_scores[differ] - detector.threshold) <= error)
        else:
            assert np.mean(~differ) >= 0.98


# The edge runtime (issue 19): the same exported files in LiteRT's own environment, without TensorFlow.

def edge_environment() -> str:
    """The edge environment's interpreter, built by ``make edge-venv`` (kept while requirements-edge.txt is unchanged)."""
    subprocess.run(["make", "-s", "edge-venv"], cwd=REPO, check=True, capture_output=True)
    return os.path.join(REPO, ".venv-edge", "bin", "python")


def edge_run(edge_python, paths, model, *options):
    return subprocess.run([edge_python, "-m", "asdkeras.edge", *paths, "--tflite", model, "--threads", "1", *options],
                          cwd=REPO, capture_output=True, text=True)


def _edge_scores(edge_python, paths, model, kernels) -> tuple[np.ndarray, np.ndarray]:
    result = edge_run(edge_python, paths, model, "--kernels", kernels)
    assert result.returncode == 0, result.stderr
    assert "LiteRT" in result.stderr.splitlines()[-1]
    rows = [line.rsplit(",", 2) for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == paths
    return np.array([float(r[1]) for r in rows]), np.array([r[2] == "anomaly" for r in rows])


def check_edge_against_score(exported: dict, edge_python: str, kind: str, quantisation: str) -> None:
    """``python -m asdkeras.edge`` in LiteRT against ``run_scoring`` (what ``score`` runs) in TensorFlow.

    On the sidecar's kernels, and on TFLite's builtin kernels, they agree to float rounding. LiteRT's
    XNNPack delegate rounds int8 arithmetic its own way (the reason int8 sidecars choose the builtin
    kernels): there it is held to the bars of a quantised model against its reference, rank
    correlation >= 0.98 and 90 % of decisions, and its flips are printed.
    """
    from asdkeras.lite import run_scoring

    detector, folder, paths, _ = exported[kind]
    model = os.path.join(folder, f"{detector.machine}_{kind}_{quantisation}_waveform.tflite")
    recommended = json.load(open(sidecar_path(model)))["kernels"]
    for kernels in ("sidecar", {"builtin": "xnnpack", "xnnpack": "builtin"}[recommended]):  # both kinds of kernels
        reference = run_scoring(paths, model, threads=1, kernels=kernels)
        expected = np.array([c.score for c in reference.scored])
        decided = np.array([bool(c.decision) for c in reference.scored])
        scores, decisions = _edge_scores(edge_python, paths, model, kernels)
        integer_xnnpack = kernels == "xnnpack" and reference.detector.sidecar["kernels"] == "builtin"
        print(f"{os.path.basename(model)} {kernels}: max |edge - score| {np.abs(scores - expected).max():.3g} "
              f"(scores up to {np.abs(expected).max():.3g}), decisions differ on {np.sum(decisions != decided)} "
              f"of {len(paths)}")
        if integer_xnnpack:
            assert scipy.stats.spearmanr(scores, expected)[0] >= 0.98 and np.mean(decisions == decided) >= 0.9
        else:
            assert_float_parity(scores, expected, kind, waveform=True)
            assert np.mean(decisions == decided) >= 0.99


def exported_files(kinds, machine: str = "fan") -> list[str]:
    """The file names ``export_kinds`` writes for ``kinds`` (an ensemble reads waveforms only)."""
    return sorted(f"{machine}_{k}_{q}{w}.{e}" for k in kinds for q in QUANTISATIONS
                  for w in ("", "_waveform") for e in ("tflite", "json") if k != "ensemble" or w)
