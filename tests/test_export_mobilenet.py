"""MobileNetV2 through the command line, ``fit`` then ``test`` (ImageNet weights, with its int8
twin), and the TFLite export of that model and of an ensemble holding it: every quantisation
against its Keras model (the integer files against the int8 twin they are converted from), the
twin's sidecars, and the same files in the edge runtime, as a device would hold them.

One fit serves both: a MobileNetV2 with its twin is the suite's costliest model. The autoencoder
and the GMM: test_export.py; what both share: tflite_parity.py; MobileNetV2 from scratch and the
other commands: test_cli_e2e.py.
"""

import json
import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from asdkeras.kinds import INTEGER_QUANTISATIONS, QUANTISATIONS
from conftest import REPO, needs_weights
from tflite_parity import (SIZES, check_edge_against_score, check_variant_against_keras, command_line_options,
                           edge_environment, export_kinds, exported_files)

pytestmark = [needs_weights, pytest.mark.slow]  # fits models: the full suite only, not the fast lane

KINDS = ("mobilenet", "ensemble")


def _run(*args):
    return CliRunner().invoke(cli.cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("export_mobilenet")


@pytest.fixture(scope="module")
def fitted(tiny_dataset, work):
    """``fit --model mobilenet`` of fan at :data:`SIZES` (its twin at the default 2 epochs)."""
    return _run("fit", "--machine", "fan", "--model", "mobilenet", *command_line_options("mobilenet"),
                "--data", tiny_dataset, "--models-dir", work / "models", "--cache-dir", work / "cache")


@pytest.fixture(scope="module")
def exported(tiny_dataset, work, fitted):
    """That MobileNetV2 (with its twin) and the fused ensemble of it and a GMM (not exported itself)."""
    assert fitted.exit_code == 0, fitted.output
    return export_kinds(tiny_dataset, work, ("mobilenet",), members=("gmm",), ensemble=True, fitted=("mobilenet",))


def test_fit_then_test_mobilenet_with_imagenet_weights_and_its_twin(tiny_dataset, work, fitted):
    from asdkeras.detector import load_scoring_model
    from asdkeras.metrics import read_score_csv, read_score_record
    from asdkeras.models.mobilenet import base_network, build_mobilenet

    assert fitted.exit_code == 0, fitted.output
    augmented = SIZES["mobilenet"]["augmented_clips"]
    assert f"+ {augmented} augmented" in fitted.output
    folder = work / "models" / "fan" / "mobilenet"
    detector = json.load(open(folder / "detector.json"))
    assert detector["weights"] == "imagenet" and detector["outlier"] == "gearbox"
    assert detector["clips"]["augmented"] == augmented
    assert detector["threshold_rule"] == "quantile" and set(detector["thresholds"]) == {"quantile", "eq2"}
    assert 0 < detector["thresholds"]["eq2"]["p_threshold"] < 1
    history = json.load(open(folder / "history.json"))
    assert history["phase"] == [1, 1, 2]  # 2 epochs of the head, 1 fine-tuning
    twin = json.load(open(folder / "int8" / "detector.json"))  # quantisation-aware, for the integer TFLite files
    assert twin["quantisation_aware"] and twin["int8_epochs"] == 2 and set(twin["thresholds"]) == {"quantile", "eq2"}
    assert json.load(open(folder / "int8" / "history.json"))["phase"] == [1, 1]
    assert "int8 variant, the quantisation-aware twin that the integer TFLite files are converted from (2 epochs" in fitted.output
    # phase 2 fine-tunes the top blocks only: the first convolution keeps its ImageNet weights
    size = SIZES["mobilenet"]["image_size"]
    imagenet = base_network(build_mobilenet(size, SIZES["mobilenet"]["width"], "imagenet")).get_layer("Conv1")
    np.testing.assert_array_equal(base_network(load_scoring_model(str(folder))).get_layer("Conv1").get_weights()[0],
                                  imagenet.get_weights()[0])

    results = work / "results"
    tested = _run("test", "--machine", "fan", "--model", "mobilenet", "--result-dir", results,
                  "--data", tiny_dataset, "--models-dir", work / "models", "--cache-dir", work / "cache")
    assert tested.exit_code == 0, tested.output
    metrics = json.load(open(results / "metrics_mobilenet_fan.json"))
    assert set(metrics["sections"]) == {"00", "01", "02"} and 0 < metrics["official_score"] <= 1
    assert len(open(results / "anomaly_score_fan_section_01_test.csv").read().splitlines()) == 12
    assert "fan / mobilenet-int8" in tested.output  # the twin is tested beside its detector
    twin_metrics = json.load(open(results / "metrics_mobilenet-int8_fan.json"))
    assert twin_metrics["threshold"] == pytest.approx(twin["threshold"])
    official = read_score_csv(str(results / "anomaly_score_fan_section_01_test.csv"))
    own = {os.path.basename(r["path"]): r["score"] for r in read_score_record(str(results / "scores_mobilenet_fan.csv"))}
    assert official == pytest.approx({name: own[name] for name in official})  # the DCASE CSVs stay the detector's


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
