"""The demo on gearbox, and the TFLite export of its MobileNetV2 and of an ensemble holding it.

``demo`` fits every kind (MobileNetV2 with ImageNet weights and its int8 twin), tests them, exports
the ensemble as an int8 TFLite file and scores the test clips with that file alone. Its MobileNetV2
(with the twin) and its GMM then serve the export checks: every quantisation of that MobileNetV2
and of a fused ensemble of the two against their Keras models (the integer files against the int8
twin they are converted from), the twin's sidecars, and the same files in the edge runtime, as a
device would hold them.

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
from tflite_parity import (check_edge_against_score, check_variant_against_keras, edge_environment, export_kinds,
                           exported_files)

pytestmark = [needs_weights, pytest.mark.slow]  # fits models: the full suite only, not the fast lane

KINDS = ("mobilenet", "ensemble")
MACHINE = "gearbox"
"""The demo's machine type (fan's autoencoder pairs with slider, which the tiny dataset lacks)."""
DEMO = dict(epochs=1, width=0.35, image_size=96, mobilenet_epochs=1, augmented_clips=4, int8_epochs=1)
"""The demo's settings here (its options): one epoch of each MobileNetV2 phase and of its twin, at 96 px."""


def _run(*args):
    return CliRunner().invoke(cli.cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("export_mobilenet")


@pytest.fixture(scope="module")
def demo(tiny_dataset, work):
    """``demo --machines gearbox`` at :data:`DEMO`, writing under ``work``."""
    options = [item for key, value in DEMO.items() for item in (f"--{key.replace('_', '-')}", value)]
    return _run("demo", "--data", tiny_dataset, "--machines", MACHINE, *options, "--models-dir", work / "models",
                "--result-dir", work / "results", "--cache-dir", work / "cache", "--tflite-dir", work / "demo-tflite")


@pytest.fixture(scope="module")
def exported(tiny_dataset, work, demo):
    """The demo's MobileNetV2 (with its twin) and the fused ensemble of it and the demo's GMM (not exported itself)."""
    assert demo.exit_code == 0, demo.output
    return export_kinds(tiny_dataset, work, ("mobilenet",), ensemble_of=("mobilenet", "gmm"), fitted=("mobilenet",), machine=MACHINE)


def test_demo_runs_the_whole_system_and_prints_the_final_table(demo, work):
    assert demo.exit_code == 0, demo.output
    final = demo.output.split("== every machine type")[1].splitlines()
    rows = [line.split()[:2] for line in final if line.startswith(MACHINE)]
    # the ensemble has an int8 twin when the battery's choice holds MobileNetV2 (which has one)
    members = json.load(open(work / "models" / MACHINE / "ensemble" / "ensemble.json"))["members"]
    twin = ("ensemble-int8",) if "mobilenet" in members else ()
    assert rows == [[MACHINE, k] for k in ("ae", "mobilenet", "mobilenet-int8", "gmm", "ensemble", *twin,
                                        "ensemble-tflite-int8")]
    assert os.path.isfile(work / "demo-tflite" / f"{MACHINE}_ensemble_int8_waveform.tflite")
    # The int8 file scored the same clips as its Keras model, in the same order. (Not the official
    # scores: with 3 + 3 clips per domain one swapped pair moves an AUC to 0 and the harmonic mean
    # with it. Parity proper is tested below and in test_export.py.)
    from scipy.stats import spearmanr

    from asdkeras.metrics import read_score_record

    lite = {r["path"]: r["score"] for r in read_score_record(work / "results" / "tflite" /
                                                              f"scores_ensemble-tflite-int8_{MACHINE}.csv")}
    # the int8 file is converted from the ensemble's quantisation-aware twin (its MobileNetV2 member
    # int8 as TFLite computes it, the others float): it scores as the twin does
    keras = {r["path"]: r["score"] for r in read_score_record(
        work / "results" / f"scores_ensemble{'-int8' if twin else ''}_{MACHINE}.csv")}
    assert sorted(lite) == sorted(keras) and len(keras) == 36
    assert spearmanr([lite[p] for p in keras], list(keras.values()))[0] > 0.99
    assert "scored 36 clips with" in demo.output


def test_the_demos_mobilenet_has_imagenet_weights_and_its_twin_and_test_scores_both(tiny_dataset, work, demo):
    from asdkeras.detector import load_scoring_model
    from asdkeras.metrics import read_score_csv, read_score_record
    from asdkeras.models.mobilenet import base_network, build_mobilenet

    assert demo.exit_code == 0, demo.output
    folder = work / "models" / MACHINE / "mobilenet"
    detector = json.load(open(folder / "detector.json"))
    assert detector["weights"] == "imagenet" and detector["outlier"] == "fan"
    assert detector["clips"]["augmented"] == DEMO["augmented_clips"]
    assert detector["threshold_rule"] == "quantile" and set(detector["thresholds"]) == {"quantile", "eq2"}
    assert 0 < detector["thresholds"]["eq2"]["p_threshold"] < 1
    history = json.load(open(folder / "history.json"))
    assert history["phase"] == [1, 2]  # 1 epoch of the head, 1 fine-tuning
    twin = json.load(open(folder / "int8" / "detector.json"))  # quantisation-aware, for the integer TFLite files
    assert twin["quantisation_aware"] and twin["int8_epochs"] == 1 and set(twin["thresholds"]) == {"quantile", "eq2"}
    assert json.load(open(folder / "int8" / "history.json"))["phase"] == [1]
    # phase 2 fine-tunes the top blocks only: the first convolution keeps its ImageNet weights
    imagenet = base_network(build_mobilenet(DEMO["image_size"], DEMO["width"], "imagenet")).get_layer("Conv1")
    np.testing.assert_array_equal(base_network(load_scoring_model(str(folder))).get_layer("Conv1").get_weights()[0],
                                  imagenet.get_weights()[0])

    results = work / "test-results"  # the test command on that detector alone
    tested = _run("test", "--machine", MACHINE, "--model", "mobilenet", "--result-dir", results,
                  "--data", tiny_dataset, "--models-dir", work / "models", "--cache-dir", work / "cache")
    assert tested.exit_code == 0, tested.output
    metrics = json.load(open(results / f"metrics_mobilenet_{MACHINE}.json"))
    assert set(metrics["sections"]) == {"00", "01", "02"} and 0 < metrics["official_score"] <= 1
    assert metrics["official_score"] == pytest.approx(
        json.load(open(work / "results" / f"metrics_mobilenet_{MACHINE}.json"))["official_score"])  # as the demo tested it
    assert len(open(results / f"anomaly_score_{MACHINE}_section_01_test.csv").read().splitlines()) == 12
    assert f"{MACHINE} / mobilenet-int8" in tested.output  # the twin is tested beside its detector
    twin_metrics = json.load(open(results / f"metrics_mobilenet-int8_{MACHINE}.json"))
    assert twin_metrics["threshold"] == pytest.approx(twin["threshold"])
    official = read_score_csv(str(results / f"anomaly_score_{MACHINE}_section_01_test.csv"))
    own = {os.path.basename(r["path"]): r["score"] for r in read_score_record(str(results / f"scores_mobilenet_{MACHINE}.csv"))}
    assert official == pytest.approx({name: own[name] for name in official})  # the DCASE CSVs stay the detector's


@pytest.mark.parametrize("kind, waveform", [("mobilenet", False), ("mobilenet", True), ("ensemble", True)],
                         ids=["mobilenet-features", "mobilenet-waveform", "ensemble-waveform"])
@pytest.mark.parametrize("quantisation", QUANTISATIONS)
def test_every_variant_scores_like_its_keras_model(exported, kind, quantisation, waveform):
    """The ensemble reads waveforms, so it has waveform-in files only."""
    check_variant_against_keras(exported, kind, quantisation, waveform)


def test_the_ensembles_sidecar_names_its_fusion_and_every_file_is_written(exported):
    _, folder, _, _ = exported["ensemble"]
    ensemble = json.load(open(os.path.join(folder, f"{MACHINE}_ensemble_int8_waveform.json")))
    assert ensemble["ensemble"]["mode"] == "fuse" and sorted(ensemble["ensemble"]["members"]) == ["gmm", "mobilenet"]
    assert ensemble["frontend"]["type"] == "waveform" and ensemble["inputs"]["waveform"]["shape"] == [1, 160000]
    assert "quantisation-aware" in ensemble["precision"] and "MobileNetV2 member" in ensemble["precision"]
    assert sorted(os.listdir(folder)) == exported_files(KINDS, MACHINE)


def test_mobilenet_integer_sidecars_carry_the_twins_threshold_and_score(exported):
    detector, folder, _, _ = exported["mobilenet"]
    twin = exported["mobilenet-int8"][0]
    # judged per condition, both thresholds are the normal quantile; the twin's own score statistics differ
    assert twin.info["quantisation_aware"] and twin.normal_scores["mean"] != detector.normal_scores["mean"]
    assert twin.info["conditions"]["score_stats"] != detector.info["conditions"]["score_stats"]
    for quantisation in INTEGER_QUANTISATIONS:
        side = json.load(open(os.path.join(folder, f"{MACHINE}_mobilenet_{quantisation}_waveform.json")))
        assert side["threshold"] == pytest.approx(twin.threshold) and side["official_score"] == 0.25
        assert side["normal_scores"]["mean"] == pytest.approx(twin.normal_scores["mean"])
        assert side["precision"].startswith("int8 network, quantisation-aware")
    side = json.load(open(os.path.join(folder, f"{MACHINE}_mobilenet_float16_waveform.json")))
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
    model = os.path.join(folder, f"{MACHINE}_ensemble_int8_waveform.tflite")
    command = [edge_python, "-m", "asdkeras.edge", *paths[:6], "--tflite", model]
    device = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    checkout = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert device.returncode == 0, device.stderr
    assert device.stdout == checkout.stdout and len(device.stdout.splitlines()) == 6
