"""TFLite export: every variant against its Keras model, the front-end on real audio, TFLite-only scoring.

Each variant is compared with the Keras model it is converted from: the detector's, or for the
dynamic and int8 variants of MobileNetV2 (and of an ensemble holding it) its quantisation-aware
twin (``int8/``).

Bars (issue 8): float32 scores equal to 1e-4 relative to the scores' largest magnitude; float16, dynamic and int8 a Spearman rank
correlation >= 0.98 with the Keras scores; dynamic and int8 the same decision on >= 98 % of
clips; float16 a largest score error within 5 % of the scores' range and decisions that differ
only for clips within that error of the threshold (scores judged per condition are in units of a
condition's normal spread, tight on these tiny fits, so float16's rounding of the weights moves
them by up to 0.6; the ensemble flipped 2-3 of 60 clips next to its threshold). Clips: all 60 of
the tiny generated fan set (training and test), so one differing decision is 1.7 %.
"""

import dataclasses
import glob
import json
import os
import subprocess

import keras
import numpy as np
import pytest
import scipy.stats

from asdkeras.audio import load_clip
from asdkeras.data.layout import scan_split
from asdkeras.detector import Detector
from asdkeras.ensemble import fit_ensemble
from asdkeras.errors import AsdError
from asdkeras.conversion import frontend_model
from asdkeras.export import export_detector, representative_inputs
from asdkeras.fit import fit_detector, make_config
from asdkeras.kinds import INTEGER_QUANTISATIONS, QUANTISATIONS
from asdkeras.lite import LiteDetector, dequantize, quantize
from asdkeras.names import INT8, sidecar_path
from conftest import KERAS_WEIGHTS, REAL_AUDIO, REPO, needs_real_audio, needs_weights

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")

SIZES = {"ae": dict(epochs=2, outlier="gearbox"), "gmm": dict(),
         "mobilenet": dict(width=0.35, image_size=96, epochs=4, fine_tune_epochs=2, augmented_clips=8,
                           outlier="gearbox", workers=1)}


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory):
    """kind -> (Keras detector, folder of its exported files, clip paths, Keras scores)."""
    work = tmp_path_factory.mktemp("export")
    cache = str(work / "cache")
    paths = [r.path for split in ("train", "test") for r in scan_split(tiny_dataset, "fan", split)]
    out = {}
    for kind in ["ae", "gmm"] + (["mobilenet"] if os.path.isdir(KERAS_WEIGHTS) else []):
        config = make_config(kind, machine="fan", data_dir=tiny_dataset, cache_dir=cache,
                             models_dir=str(work / "models"), **SIZES[kind])
        fit_detector(kind, config)
        detector = Detector.load(config.folder(), variants=True)
        twin = detector.variants.get(INT8)
        assert (twin is not None) == (kind == "mobilenet")
        features, waveforms = representative_inputs(detector, tiny_dataset, "dev_data", cache, count=48)
        folder = str(work / "tflite")
        export_detector(detector, folder, QUANTISATIONS, features, waveforms, official_score=0.5,
                        variant_scores={INT8: 0.25})
        out[kind] = (detector, folder, paths, detector.score_files(paths, cache))
        if twin is not None:  # the integer variants are its conversions
            out[f"{kind}-int8"] = (twin, folder, paths, twin.score_files(paths, cache))
    ensemble = fit_ensemble("fan", str(work / "models"), "fuse", data_dir=tiny_dataset, cache_dir=cache)
    _, waveforms = representative_inputs(ensemble, tiny_dataset, "dev_data", cache, count=48)
    twin = ensemble.variants.get(INT8)  # with the MobileNetV2 member's twin
    export_detector(ensemble, folder, QUANTISATIONS, None, waveforms)
    out["ensemble"] = (ensemble, folder, paths, ensemble.score_files(paths, cache))
    if twin is not None:
        out["ensemble-int8"] = (twin, folder, paths, twin.score_files(paths, cache))
    return out


def _variants():
    for kind in ("ae", "gmm", "mobilenet", "ensemble"):
        for quantisation in QUANTISATIONS:
            for waveform in (False, True) if kind != "ensemble" else (True,):  # the ensemble reads waveforms
                marks = [needs_weights] if kind == "mobilenet" else []
                yield pytest.param(kind, quantisation, waveform, marks=marks,
                                   id=f"{kind}-{quantisation}-{'waveform' if waveform else 'features'}")


def _float_bar(kind: str, waveform: bool) -> float:
    """Largest float32 score difference between two computations of one model, relative to the scores' scale.

    Spectrogram images hold whole pixel values: where two FFTs differ by 1e-6 at an x.5 boundary,
    a pixel differs by 1 (measured: TFLite against TensorFlow 2.4e-4 of the scale, LiteRT's XNNPack
    against tf.lite 1.6e-4).
    """
    return 1e-3 if kind in ("mobilenet", "ensemble") and waveform else 1e-4


@pytest.mark.parametrize("kind, quantisation, waveform", _variants())
def test_every_variant_scores_like_its_keras_model(exported, kind, quantisation, waveform):
    """Against the Keras model it is converted from: the integer variants of MobileNetV2 and of the
    ensemble holding it against their quantisation-aware twins."""
    twin = f"{kind}-int8" in exported and quantisation in INTEGER_QUANTISATIONS
    detector, folder, paths, keras_scores = exported[f"{kind}-int8" if twin else kind]
    name = f"fan_{kind}_{quantisation}{'_waveform' if waveform else ''}"
    lite = LiteDetector(os.path.join(folder, f"{name}.tflite"), threads=1)
    scores = np.array([lite.score_clip(load_clip(p)) for p in paths])
    print(f"{name}: Keras scores {keras_scores.min():.4g}..{keras_scores.max():.4g}, "
          f"max |TFLite - Keras| {np.abs(scores - keras_scores).max():.3g}, "
          f"Spearman {scipy.stats.spearmanr(scores, keras_scores)[0]:.4f}, same decision "
          f"{np.mean((scores > lite.threshold) == (keras_scores > detector.threshold)):.3f}")
    if quantisation == "float32":  # relative to the scores' scale (a logit near 0 has no relative error)
        np.testing.assert_allclose(scores, keras_scores, rtol=0, atol=_float_bar(kind, waveform) * np.abs(keras_scores).max())
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


def test_sidecars_say_what_an_app_needs(exported):
    detector, folder, _, _ = exported["ae"]
    side = json.load(open(os.path.join(folder, "fan_ae_int8_waveform.json")))
    assert side["inputs"] == {"waveform": {"shape": [1, 160000], "dtype": "float32"}}
    assert side["outputs"] == {"score": {"shape": [1], "dtype": "float32"}}
    assert side["sample_rate"] == 16000 and side["clip_samples"] == 160000 and side["signature"] == "score"
    assert side["threshold"] == pytest.approx(detector.threshold) and side["score_direction"] == "higher is more anomalous"
    assert side["machine"] == "fan" and side["kind"] == "ae" and side["official_score"] == 0.5
    assert "front-end and score tail float32" in side["precision"] and side["asdkeras_version"]
    features = json.load(open(os.path.join(folder, "fan_ae_float32.json")))
    assert features["inputs"] == {"features": {"shape": [1, 313, 128], "dtype": "float32"}}
    assert features["frontend"]["type"] == "logmel" and not features["frontend_in_model"]
    gmm = json.load(open(os.path.join(folder, "fan_gmm_int8_waveform.json")))
    assert gmm["precision"] == "float32 throughout: the whole model is front-end and score tail"
    kinds = [k for k in exported if not k.endswith("-int8")]
    assert sorted(os.listdir(folder)) == sorted(f"fan_{k}_{q}{w}.{e}" for k in kinds for q in QUANTISATIONS
                                                for w in ("", "_waveform") for e in ("tflite", "json")
                                                if k != "ensemble" or w)
    ensemble = json.load(open(os.path.join(folder, "fan_ensemble_int8_waveform.json")))
    assert ensemble["ensemble"]["mode"] == "fuse" and sorted(ensemble["ensemble"]["members"]) == sorted(set(kinds) - {"ensemble"})
    assert ensemble["frontend"]["type"] == "waveform" and ensemble["inputs"]["waveform"]["shape"] == [1, 160000]


@needs_weights
def test_mobilenet_integer_sidecars_carry_the_twins_threshold_and_score(exported):
    detector, folder, _, _ = exported["mobilenet"]
    twin = exported["mobilenet-int8"][0]
    # judged per condition, both thresholds are the normal quantile; the twin's own score statistics differ
    assert twin.info["quantisation_aware"] and twin.normal_scores["mean"] != detector.normal_scores["mean"]
    assert twin.info["conditions"]["score_stats"] != detector.info["conditions"]["score_stats"]
    for quantisation in INTEGER_QUANTISATIONS:
        side = json.load(open(os.path.join(folder, f"fan_mobilenet_{quantisation}_waveform.json")))
        assert side["threshold"] == pytest.approx(twin.threshold) and side["official_score"] == 0.25
        assert side["normal_scores"]["mean"] == pytest.approx(twin.normal_scores["mean"])
        assert side["precision"].startswith("int8 network, quantisation-aware")
    side = json.load(open(os.path.join(folder, "fan_mobilenet_float16_waveform.json")))
    assert side["threshold"] == pytest.approx(detector.threshold) and side["official_score"] == 0.5


def test_int8_io_feature_model_applies_scale_and_zero_point(exported, tmp_path):
    judged, _, paths, _ = exported["ae"]
    data_root = paths[0].split(os.sep + "dev_data" + os.sep)[0]
    features, waveforms = representative_inputs(judged, data_root, "dev_data", str(tmp_path / "cache"), count=48)
    with pytest.raises(AsdError, match="need float; export int8 without --int8-io"):
        export_detector(judged, str(tmp_path), ["int8"], features, waveforms, int8_io=True)
    # the network alone (the raw reconstruction error) is all integer
    raw = next(layer for layer in judged.model.layers if isinstance(layer, keras.Model))
    detector = dataclasses.replace(judged, model=raw)
    keras_scores = detector.score_files(paths, str(tmp_path / "cache"))
    export_detector(detector, str(tmp_path), ["int8"], features, waveforms, int8_io=True)
    lite = LiteDetector(str(tmp_path / "fan_ae_int8.tflite"))
    assert lite.input_spec["dtype"] == "int8" and "scale" in lite.input_spec and "scale" in lite.output_spec
    scores = np.array([lite.score_clip(load_clip(p)) for p in paths])
    assert scipy.stats.spearmanr(scores, keras_scores)[0] >= 0.9  # int8 score output: 256 levels


def test_quantize_rounds_and_clips():
    assert quantize(np.array([0.0, 0.26, 100.0, -100.0]), 0.1, 3).tolist() == [3, 6, 127, -128]
    np.testing.assert_allclose(dequantize(np.array([3, 13]), 0.1, 3), [0.0, 1.0])


@needs_real_audio
@pytest.mark.parametrize("quantisation, tolerance_db", [("float32", 1e-3), ("float16", 0.1), ("dynamic", 1e-3)])
def test_waveform_front_end_matches_features_py_on_real_audio(quantisation, tolerance_db):
    """The front-end inside waveform models (pinned constants) against features.py, which a test
    holds to librosa; float16 and dynamic variants must leave it as it is."""
    import tensorflow as tf

    from asdkeras.frontend import LogMelFrontend

    frontend = LogMelFrontend()
    runner = tf.lite.Interpreter(model_content=frontend_model(frontend, quantisation)).get_signature_runner("score")
    files = sorted(glob.glob(os.path.join(REAL_AUDIO, "dcase2023-dev", "*", "train", "*.wav")))[:6]
    assert files
    for path in files:
        clip = load_clip(path)[np.newaxis]
        tflite = runner(waveform=clip)["features"]
        np.testing.assert_allclose(tflite, frontend.from_waveforms(clip).numpy(), atol=tolerance_db)


# The edge runtime (issue 19): the same exported files in LiteRT's own environment, without TensorFlow.

@pytest.fixture(scope="module")
def edge_python():
    """The edge environment's interpreter, built by ``make edge-venv`` (kept while requirements-edge.txt is unchanged)."""
    subprocess.run(["make", "-s", "edge-venv"], cwd=REPO, check=True, capture_output=True)
    return os.path.join(REPO, ".venv-edge", "bin", "python")


def _edge_run(edge_python, paths, model, *options):
    return subprocess.run([edge_python, "-m", "asdkeras.edge", *paths, "--tflite", model, "--threads", "1", *options],
                          cwd=REPO, capture_output=True, text=True)


def _edge_scores(edge_python, paths, model, kernels) -> tuple[np.ndarray, np.ndarray]:
    result = _edge_run(edge_python, paths, model, "--kernels", kernels)
    assert result.returncode == 0, result.stderr
    assert "LiteRT" in result.stderr.splitlines()[-1]
    rows = [line.rsplit(",", 2) for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == paths
    return np.array([float(r[1]) for r in rows]), np.array([r[2] == "anomaly" for r in rows])


def test_the_edge_environment_has_no_tensorflow(edge_python):
    result = subprocess.run([edge_python, "-c", "import tensorflow"], capture_output=True, text=True)
    assert "No module named 'tensorflow'" in result.stderr


def _edge_variants():
    for kind in ("ae", "gmm", "mobilenet", "ensemble"):
        for quantisation in QUANTISATIONS:
            yield pytest.param(kind, quantisation, marks=[needs_weights] if kind == "mobilenet" else [],
                               id=f"{kind}-{quantisation}")


@pytest.mark.parametrize("kind, quantisation", _edge_variants())
def test_the_edge_runtime_scores_every_variant_as_score_does(exported, edge_python, kind, quantisation):
    """``python -m asdkeras.edge`` in LiteRT against ``run_scoring`` (what ``score`` runs) in TensorFlow.

    On the sidecar's kernels, and on TFLite's builtin kernels, they agree to float rounding. LiteRT's
    XNNPack delegate rounds int8 arithmetic its own way (the reason int8 sidecars choose the builtin
    kernels): there it is held to the bars of a quantised model against its reference, rank
    correlation >= 0.98 and 90 % of decisions, and its flips are printed.
    """
    from asdkeras.lite import run_scoring

    _, folder, paths, _ = exported[kind]
    model = os.path.join(folder, f"fan_{kind}_{quantisation}_waveform.tflite")
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
            np.testing.assert_allclose(scores, expected, rtol=0, atol=_float_bar(kind, True) * np.abs(expected).max())
            assert np.mean(decisions == decided) >= 0.99


def test_a_copy_of_the_device_files_alone_scores_as_the_checkout_does(exported, edge_python, tmp_path):
    import shutil

    from asdkeras.edge import DEVICE_FILES

    for name in DEVICE_FILES:
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        shutil.copy(os.path.join(REPO, name), tmp_path / name)
    _, folder, paths, _ = exported["ensemble"]
    model = os.path.join(folder, "fan_ensemble_int8_waveform.tflite")
    command = [edge_python, "-m", "asdkeras.edge", *paths[:6], "--tflite", model]
    device = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    checkout = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert device.returncode == 0, device.stderr
    assert device.stdout == checkout.stdout and len(device.stdout.splitlines()) == 6


def test_the_edge_runtime_refuses_feature_in_models_and_skips_bad_files(exported, edge_python, tmp_path):
    _, folder, paths, _ = exported["ae"]
    result = _edge_run(edge_python, paths[:1], os.path.join(folder, "fan_ae_float32.tflite"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {os.path.join(folder, 'fan_ae_float32.tflite')}: a feature-in model needs TensorFlow's front-end, "
        f"which is not installed here; use the waveform-in model beside it (*_waveform.tflite)"]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00")
    csv_path = tmp_path / "out.csv"
    result = _edge_run(edge_python, [paths[0], str(broken)], os.path.join(folder, "fan_ae_int8_waveform.tflite"),
                       "--csv", str(csv_path))
    assert result.returncode == 1 and f"error: {broken}: cannot decode audio" in result.stderr
    assert "Traceback" not in result.stderr and csv_path.read_text().splitlines()[1].startswith(paths[0] + ",")
