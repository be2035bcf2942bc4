"""TFLite export of MobileNetV2 and of an ensemble holding it: every quantisation against its Keras
model (the integer files against the int8 twin they are converted from), the twin's sidecars, and
the same files in the edge runtime, as a device would hold them.

The autoencoder and the GMM: test_export.py; what both share: tflite_parity.py.
"""

import json
import os
import subprocess

import pytest

from asdkeras.kinds import INTEGER_QUANTISATIONS, QUANTISATIONS
from conftest import REPO, needs_weights
from tflite_parity import (check_edge_against_score, check_variant_against_keras, edge_environment, export_kinds,
                           exported_files)

pytestmark = [needs_weights, pytest.mark.slow]  # fits models: the full suite only, not the fast lane

KINDS = ("mobilenet", "ensemble")


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory):
    """MobileNetV2 (with its twin) and the fused ensemble of it and a GMM (not exported itself)."""
    return export_kinds(tiny_dataset, tmp_path_factory.mktemp("export_mobilenet"), ("mobilenet",), members=("gmm",),
                        ensemble=True)


@pytest.mark.parametrize("kind, waveform", [("mobilenet", False), ("mobilenet", True), ("ensemble", True)],
                         ids=["mobilenet-features", "mobilenet-waveform", "ensemble-waveform"])
@pytest.mark.parametrize("quantisation", QUANTISATIONS)
def test_every_variant_scores_like_its_keras_model(exported, kind, quantisation, waveform):
    """The ensemble reads waveforms, so it has waveform-in files only."""
    check_variant_against_keras(exported, kind, quantisation, waveform)


def test_the_ensembles_sidecar_names_its_fusion_and_every_file_is_written(exported):
    _, folder, _, _ = exported["ensemble"]
    ensemble = json.load(open(os.path.join(folder, "fan_ensemble_int8_waveform.json")))
    assert ensemble["ensemble"]["mode"] == "fuse" and sorted(ensemble["ensemble"]["members"]) == ["gmm", "mobilenet"]
    assert ensemble["frontend"]["type"] == "waveform" and ensemble["inputs"]["waveform"]["shape"] == [1, 160000]
    assert "quantisation-aware" in ensemble["precision"] and "MobileNetV2 member" in ensemble["precision"]
    assert sorted(os.listdir(folder)) == exported_files(KINDS)


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


@pytest.fixture(scope="module")
def edge_python():
    return edge_environment()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("quantisation", QUANTISATIONS)
def test_the_edge_runtime_scores_every_variant_as_score_does(exported, edge_python, kind, quantisation):
    check_edge_against_score(exported, edge_python, kind, quantisation)


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
