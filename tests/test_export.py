"""TFLite export of the autoencoder and the GMM: every quantisation against its Keras model, sidecars,
int8 I/O, the front-end on real audio, and the same files in the edge runtime.

MobileNetV2, its int8 twin and an ensemble holding it: test_export_mobilenet.py. What both share
(fitting and exporting, the parity bars, the edge environment): tflite_parity.py.
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
from asdkeras.conversion import frontend_model
from asdkeras.errors import AsdError
from asdkeras.export import export_detector, representative_inputs
from asdkeras.kinds import QUANTISATIONS
from asdkeras.lite import LiteDetector, dequantize, quantize
from conftest import REAL_AUDIO, needs_real_audio
from tflite_parity import (check_edge_against_score, check_variant_against_keras, edge_environment, edge_run,
                           export_kinds, exported_files)

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")

KINDS = ("ae", "gmm")


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory):
    """kind -> (Keras detector, folder of its exported files, clip paths, Keras scores)."""
    return export_kinds(tiny_dataset, tmp_path_factory.mktemp("export"), KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("quantisation", QUANTISATIONS)
@pytest.mark.parametrize("waveform", [False, True], ids=["features", "waveform"])
def test_every_variant_scores_like_its_keras_model(exported, kind, quantisation, waveform):
    check_variant_against_keras(exported, kind, quantisation, waveform)


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
    assert sorted(os.listdir(folder)) == exported_files(KINDS)


def test_int8_io_feature_model_applies_scale_and_zero_point(exported, tmp_path):
    judged, _, paths, _ = exported["ae"]
    data_root = paths[0].split(os.sep + "dev_data" + os.sep)[0]
    features, waveforms = representative_inputs(judged, data_root, "dev_data", str(tmp_path / "cache"), count=48)
    with pytest.raises(AsdError, match="need float; export int8 without --int8-io"):
        export_detector(judged, str(tmp_path), ["int8"], features, waveforms, int8_io=True)
    # the network alone (the raw reconstruction error; of its two views, the clip mean) is all integer
    raw = next(layer for layer in judged.model.layers if isinstance(layer, keras.Model))
    detector = dataclasses.replace(judged, model=keras.Model(raw.inputs, raw.outputs[0]))
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
    return edge_environment()


def test_the_edge_environment_has_no_tensorflow(edge_python):
    result = subprocess.run([edge_python, "-c", "import tensorflow"], capture_output=True, text=True)
    assert "No module named 'tensorflow'" in result.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("quantisation", QUANTISATIONS)
def test_the_edge_runtime_scores_every_variant_as_score_does(exported, edge_python, kind, quantisation):
    check_edge_against_score(exported, edge_python, kind, quantisation)


def test_the_edge_runtime_refuses_feature_in_models_and_skips_bad_files(exported, edge_python, tmp_path):
    _, folder, paths, _ = exported["ae"]
    result = edge_run(edge_python, paths[:1], os.path.join(folder, "fan_ae_float32.tflite"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {os.path.join(folder, 'fan_ae_float32.tflite')}: a feature-in model needs TensorFlow's front-end, "
        f"which is not installed here; use the waveform-in model beside it (*_waveform.tflite)"]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00")
    csv_path = tmp_path / "out.csv"
    result = edge_run(edge_python, [paths[0], str(broken)], os.path.join(folder, "fan_ae_int8_waveform.tflite"),
                       "--csv", str(csv_path))
    assert result.returncode == 1 and f"error: {broken}: cannot decode audio" in result.stderr
    assert "Traceback" not in result.stderr and csv_path.read_text().splitlines()[1].startswith(paths[0] + ",")
