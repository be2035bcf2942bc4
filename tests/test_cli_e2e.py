"""End to end through the command line on generated data: fit, test, oe-sweep and their errors."""

import csv
import glob
import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from asdkeras.data.synth import more_normals
from conftest import TINY, needs_weights

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


def _run(*args):
    result = CliRunner().invoke(cli.cli, [str(a) for a in args])
    return result


def _common(tiny_dataset, workdir):
    return ["--data", tiny_dataset, "--models-dir", workdir / "models", "--cache-dir", workdir / "cache"]


def test_fit_then_test_autoencoder_with_outlier_exposure(tiny_dataset, workdir):
    fitted = _run("fit", "--machine", "gearbox", "--epochs", "2", *_common(tiny_dataset, workdir))
    assert fitted.exit_code == 0, fitted.output
    assert "outlier fan" in fitted.output  # the report's pairing for gearbox
    folder = workdir / "models" / "gearbox" / "ae"
    assert sorted(os.listdir(folder)) == ["config.json", "detector.json", "history.json", "model.keras"]
    detector = json.load(open(folder / "detector.json"))
    assert detector["loss"] == "oe" and detector["outlier"] == "fan" and math.isfinite(detector["threshold"])
    # the default error pooling: the clip mean and the peak, each judged per condition, fused by their max
    assert detector["error_pooling"] == "mean+peak" and detector["views"] == ["steady", "transient"]
    assert [len(view["groups"]) for view in detector["conditions"]] == [6, 6]
    assert detector["thresholds"]["quantile"]["rule"] == "fused-prediction"
    assert detector["thresholds"]["quantile"]["confidence"] == 0.9  # each condition widened by a tolerance factor
    assert "2 views' standardised scores" in detector["thresholds"]["quantile"]["description"]
    assert detector["threshold_rule"] == "quantile" and detector["normal_scores"]["count"] > 0
    assert "threshold" in fitted.output and detector["thresholds"]["quantile"]["description"] in fitted.output

    results = workdir / "results"
    tested = _run("test", "--machine", "gearbox", "--result-dir", results, *_common(tiny_dataset, workdir))
    assert tested.exit_code == 0, tested.output
    assert "official score" in tested.output
    for section in ("00", "01", "02"):
        rows = list(csv.reader(open(results / f"anomaly_score_gearbox_section_{section}_test.csv")))
        assert len(rows) == 12 and [r[0] for r in rows] == sorted(r[0] for r in rows)
        assert all(r[0].startswith(f"section_{section}_") and math.isfinite(float(r[1])) for r in rows)
        decisions = list(csv.reader(open(results / f"decision_result_gearbox_section_{section}_test.csv")))
        assert [r[0] for r in decisions] == [r[0] for r in rows] and {r[1] for r in decisions} <= {"0", "1"}
    metrics = json.load(open(results / "metrics_ae_gearbox.json"))
    assert set(metrics["sections"]) == {"00", "01", "02"}
    assert {"auc_source", "auc_target", "pauc"} <= set(metrics["sections"]["00"])
    assert 0 < metrics["official_score"] <= 1


def test_export_tflite_then_score_with_the_tflite_model_alone(tiny_dataset, workdir, tmp_path, monkeypatch):
    """After fit and test of the gearbox AE above: export, then score a folder holding two bad files
    with the int8 waveform model, with every way of building or loading a Keras model disabled."""
    import shutil

    import keras
    from keras.src.models import functional

    out = workdir / "tflite"
    exported = _run("export-tflite", "--machine", "gearbox", "--model", "ae", "--quant", "float32,int8",
                    "--models-dir", workdir / "models", "--out", out, "--cache-dir", workdir / "cache",
                    "--result-dir", workdir / "results")
    assert exported.exit_code == 0, exported.output
    assert sorted(os.listdir(out)) == sorted(f"gearbox_ae_{q}{w}.{e}" for q in ("float32", "int8")
                                             for w in ("", "_waveform") for e in ("tflite", "json"))
    sidecar = json.load(open(out / "gearbox_ae_int8_waveform.json"))
    assert sidecar["official_score"] == json.load(open(workdir / "results" / "metrics_ae_gearbox.json"))["official_score"]
    assert sidecar["intended_flag_share"] == pytest.approx(0.1)  # the 0.9 quantile's share: score's notes

    def forbidden(*args, **kwargs):
        raise AssertionError("a Keras model was built or loaded")

    for owner, name in ((keras.Model, "__init__"), (functional.Functional, "__init__"),
                        (keras.saving, "load_model"), (keras.models, "load_model")):
        monkeypatch.setattr(owner, name, forbidden)
    folder = tmp_path / "clips"
    folder.mkdir()
    good = sorted(glob.glob(os.path.join(tiny_dataset, "dev_data", "gearbox", "test", "section_00_*.wav")))
    for path in good:
        shutil.copy(path, folder)
    (folder / "zz_corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (folder / "aa_empty.wav").write_bytes(b"")
    model = out / "gearbox_ae_int8_waveform.tflite"
    scored = _run("score", folder, "--tflite", model, "--csv", tmp_path / "scores.csv", "--threads", "1")
    assert scored.exit_code == 1, scored.output
    assert "zz_corrupt.wav" in scored.output and "aa_empty.wav" in scored.output and "Traceback" not in scored.output
    assert f"scored {len(good)} clips" in scored.output and "2 file(s) could not be read" in scored.output
    rows = list(csv.reader(open(tmp_path / "scores.csv")))
    assert rows[0] == ["file", "score", "decision"] and len(rows) == len(good) + 1
    assert {r[2] for r in rows[1:]} <= {"0", "1"} and all(math.isfinite(float(r[1])) for r in rows[1:])

    test_dir = os.path.join(tiny_dataset, "dev_data", "gearbox", "test")
    evaluated = _run("score", test_dir, "--tflite", model, "--result-dir", tmp_path / "lite_results")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.load(open(tmp_path / "lite_results" / "metrics_ae-tflite-int8_gearbox.json"))
    assert set(metrics["sections"]) == {"00", "01", "02"} and 0 < metrics["official_score"] <= 1
    assert len(open(tmp_path / "lite_results" / "anomaly_score_gearbox_section_02_test.csv").read().splitlines()) == 12


def test_oe_sweep_prints_the_report_table(tiny_dataset, workdir):
    swept = _run("oe-sweep", "--machine", "valve", "--epochs", "1", "--result-dir", workdir / "sweep",
                 *_common(tiny_dataset, workdir))
    assert swept.exit_code == 0, swept.output
    lines = [line for line in swept.output.splitlines() if line.startswith(("valve", "clear", "OE"))]
    assert lines[0].split()[:4] == ["valve", "AUC", "0", "AUC"]
    assert [line.split("  ")[0] for line in lines[1:]] == ["clear AE", "OE (fan)", "OE (gearbox)"]
    rows = json.load(open(workdir / "sweep" / "oe_sweep_valve.json"))
    assert [r["outlier"] for r in rows] == [None, "fan", "gearbox"]


@pytest.mark.parametrize("args, message", [
    (["fit", "--machine", "fan"], "outlier machine 'slider' has no training data"),
    (["fit", "--machine", "fan", "--loss", "mse", "--outlier", "valve"], "--loss mse trains the clear AE"),
    (["fit", "--machine", "fan", "--outlier", "fan"], "is the machine being trained"),
    (["test", "--machine", "valve"], "no trained detector there"),
    (["fit", "--machine", "bearing"], "no such machine folder"),
    (["fit", "--machine", "fan", "--width", "0.35"], "--width does not apply to --model ae (it is an option of --model mobilenet)"),
])
def test_bad_requests_are_one_line_errors(tiny_dataset, workdir, args, message):
    result = _run(*args, *_common(tiny_dataset, workdir))
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1 and "Traceback" not in result.output


@needs_weights
def test_fit_mobilenet_from_scratch(tiny_dataset, workdir):
    """``--weights none``: one phase training the whole network, no twin with ``--int8-epochs 0``.
    With ImageNet weights, ``fit`` then ``test`` (and the twin): test_export_mobilenet.py, which
    exports that fit."""
    from asdkeras.detector import load_scoring_model
    from asdkeras.models.mobilenet import base_network, build_mobilenet

    small = ["--width", "0.35", "--image-size", "64", "--epochs", "1", "--fine-tune-epochs", "1",
             "--train-clips", "12", "--augmented-clips", "4", "--outlier", "fan"]
    scratch_models = workdir / "scratch"
    scratch = _run("fit", "--machine", "valve", "--model", "mobilenet", "--weights", "none", *small,
                   "--int8-epochs", "0", "--data", tiny_dataset, "--models-dir", scratch_models,
                   "--cache-dir", workdir / "cache")
    assert scratch.exit_code == 0, scratch.output
    assert "+ 4 augmented" in scratch.output
    scratch_folder = scratch_models / "valve" / "mobilenet"
    assert json.load(open(scratch_folder / "detector.json"))["weights"] is None
    assert not (scratch_folder / "int8").exists() and "int8 twin" not in scratch.output  # --int8-epochs 0
    assert json.load(open(scratch_folder / "history.json"))["phase"] == [1, 1]  # one phase, whole network
    scratch_conv = base_network(load_scoring_model(str(scratch_folder))).get_layer("Conv1").get_weights()[0]
    pretrained_conv = base_network(build_mobilenet(64, 0.35, "imagenet")).get_layer("Conv1").get_weights()[0]
    assert not np.allclose(scratch_conv, pretrained_conv)


@needs_weights
def test_fit_all_calibrate_then_test_export_and_score_the_ensemble(tiny_dataset, workdir, tmp_path):
    from asdkeras.detector import load_scoring_model
    from asdkeras.models.conditions import conditioned_parts

    common = ["--data", tiny_dataset, "--models-dir", tmp_path / "models", "--cache-dir", workdir / "cache"]
    fitted = _run("fit", "--machine", "valve", "--model", "all", "--epochs", "1", "--width", "0.35",
                  "--image-size", "64", "--fine-tune-epochs", "0", "--train-clips", "12", "--augmented-clips", "2",
                  "--outlier", "fan", "--int8-epochs", "0", *common)  # twins: test_export.py and the demo test
    assert fitted.exit_code == 0, fitted.output
    for kind in ("ae", "mobilenet", "gmm"):
        assert f"saved {kind} for valve" in fitted.output
    folder = tmp_path / "models" / "valve" / "ensemble"
    assert {"ensemble.json", "detector.json", "model.keras", "config.json"} <= set(os.listdir(folder))
    choice = json.load(open(folder / "ensemble.json"))
    line = f"ensemble battery: {' + '.join(choice['members'])}"
    assert line in fitted.output and "battery AUC gmm" in fitted.output and "fuse-max" in fitted.output
    assert set(choice["battery"]["candidates"]) == {"fuse-max", "fuse-mean", "ae", "mobilenet", "gmm"}
    eligible = choice["battery"]["eligible"]  # both views (the AE's mean+peak, the GMM's), per condition
    assert "ae" in eligible and "mobilenet" not in eligible and "gmm" in eligible
    assert choice["members"] in [choice["battery"]["candidates"][name]["members"] for name in eligible]

    # a new operating condition of section 01: every detector calibrated with its normals, networks kept
    clips = more_normals(str(tmp_path / "new"), "valve", TINY, 7, "train", "target", 3)["01"]

    def network_weights():
        return conditioned_parts(load_scoring_model(str(tmp_path / "models" / "valve" / "ae")))[0].get_weights()

    network = network_weights()
    groups = json.load(open(tmp_path / "models" / "valve" / "ae" / "detector.json"))["conditions"][0]["score_stats"]
    calibrated = _run("calibrate", "--machine", "valve", "--section", "01", *clips, *common)
    assert calibrated.exit_code == 0, calibrated.output  # (a clip given again counts once: test_calibration.py)
    assert "valve: 3 normal clips added; calibration clips in all: 3 of 01/target" in calibrated.output
    for kind, how in (("ae", "network kept"), ("mobilenet", "network kept"), ("gmm", "fitted again"),
                      ("ensemble", "built again from the calibrated members, its choice kept")):
        assert f"== {kind}: {how}" in calibrated.output
        if kind != "ensemble":
            saved = json.load(open(tmp_path / "models" / "valve" / kind / "config.json"))["calibration"]
            assert [c["path"] for c in saved] == clips and saved[0]["section"] == "01"
    assert "then export again ('python cli.py export-tflite --machine valve'" in calibrated.output
    judged = json.load(open(tmp_path / "models" / "valve" / "ae" / "detector.json"))["conditions"][0]["score_stats"]
    assert judged["01/target"]["clips"] == groups["01/target"]["clips"] + 3
    assert judged["01/target"]["held_out"] == groups["01/target"]["held_out"] + 3  # clips the network never saw
    assert judged["00/target"]["clips"] == groups["00/target"]["clips"]
    assert all(np.array_equal(a, b) for a, b in zip(network, network_weights()))  # the fit's network, kept
    test_normal = os.path.join(tiny_dataset, "dev_data", "valve", "test", next(name for name in sorted(os.listdir(
        os.path.join(tiny_dataset, "dev_data", "valve", "test"))) if "_normal_" in name))
    refused = _run("calibrate", "--machine", "valve", "--section", "01", test_normal, clips[0], *common)
    assert refused.exit_code == 2 and "one of valve's test clips" in refused.output
    kept = json.load(open(folder / "ensemble.json"))  # the fit's choice, built again from the calibrated members
    assert [kept[key] for key in ("members", "combine", "battery")] == [choice[key] for key in ("members", "combine",
                                                                                               "battery")]
    assert kept["reason"] == choice["reason"] + "; kept when its members were calibrated"
    assert line in calibrated.output

    results = tmp_path / "results"
    tested = _run("test", "--machine", "valve", "--model", "ensemble", "--result-dir", results, *common)
    assert tested.exit_code == 0, tested.output
    assert line in tested.output and "official score" in tested.output
    metrics = json.load(open(results / "metrics_ensemble_valve.json"))
    assert 0 < metrics["official_score"] <= 1

    out = tmp_path / "tflite"
    exported = _run("export-tflite", "--machine", "valve", "--model", "ensemble", "--quant", "float32",
                    "--models-dir", tmp_path / "models", "--out", out, "--result-dir", results)
    assert exported.exit_code == 0, exported.output
    assert sorted(os.listdir(out)) == ["valve_ensemble_float32_waveform.json", "valve_ensemble_float32_waveform.tflite"]
    side = json.load(open(out / "valve_ensemble_float32_waveform.json"))
    assert side["ensemble"]["members"] == choice["members"]
    assert side["calibrated_conditions"] == {"01/target": 3}  # what an app can show of its calibration
    assert side["official_score"] == pytest.approx(metrics["official_score"])

    scored = _run("score", os.path.join(tiny_dataset, "dev_data", "valve", "test"), "--tflite",
                  out / "valve_ensemble_float32_waveform.tflite", "--result-dir", tmp_path / "lite")
    assert scored.exit_code == 0, scored.output
    lite = json.load(open(tmp_path / "lite" / "metrics_ensemble-tflite-float32_valve.json"))
    assert lite["official_score"] == pytest.approx(metrics["official_score"], abs=0.02)


def test_ensemble_options_apply_to_ensembles_only(tiny_dataset, workdir):
    result = _run("fit", "--machine", "fan", "--ensemble", "pick", *_common(tiny_dataset, workdir))
    assert result.exit_code == 2 and "--ensemble applies to --model ensemble or all" in result.output
    result = _run("fit", "--machine", "fan", "--model", "ensemble", "--epochs", "3", *_common(tiny_dataset, workdir))
    assert result.exit_code == 2 and "--epochs does not apply to --model ensemble" in result.output


def test_a_machine_type_outside_the_seven_trains_and_tests(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(os.path.join(tiny_dataset, "dev_data", "gearbox"), root / "dev_data" / "pump")
    shutil.copytree(os.path.join(tiny_dataset, "dev_data", "valve"), root / "dev_data" / "valve")
    common = ["--data", root, "--models-dir", tmp_path / "models", "--cache-dir", tmp_path / "cache"]
    fitted = _run("fit", "--machine", "pump", "--epochs", "1", *common)
    assert fitted.exit_code == 0, fitted.output
    assert "pump is not in the report's pairing; using valve" in fitted.output and "outlier valve" in fitted.output
    tested = _run("test", "--machine", "pump", "--result-dir", tmp_path / "results", *common)
    assert tested.exit_code == 0, tested.output
    assert json.load(open(tmp_path / "results" / "metrics_ae_pump.json"))["official_score"] > 0
    missing = _run("fit", "--machine", "compressor", *common)
    assert missing.exit_code == 2 and "machines present: pump, valve" in missing.output


def test_every_command_explains_itself_with_an_example_and_described_options():
    for name, command in cli.cli.commands.items():
        assert command.help and "Example" in command.help, name
        undescribed = [p.name for p in command.params if isinstance(p, __import__("click").Option) and not p.help]
        assert not undescribed, (name, undescribed)


def test_debug_shows_the_traceback_and_quiet_keeps_the_result(tiny_dataset, workdir):
    plain = _run("test", "--machine", "nothing", "--data", tiny_dataset)
    assert plain.exit_code == 2 and "Traceback" not in plain.output
    debug = CliRunner().invoke(cli.cli, ["--debug", "test", "--machine", "nothing", "--data", tiny_dataset])
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "AsdError"


def test_a_named_variant_keeps_the_default_detector(tiny_dataset, tmp_path):
    common = ["--data", tiny_dataset, "--models-dir", tmp_path / "models", "--cache-dir", tmp_path / "cache"]
    assert _run("fit", "--machine", "gearbox", "--epochs", "1", *common).exit_code == 0
    variant = _run("fit", "--machine", "gearbox", "--epochs", "1", "--loss", "mse", "--outlier", "none",
                   "--name", "clear-ae", *common)
    assert variant.exit_code == 0, variant.output
    assert json.load(open(tmp_path / "models" / "gearbox" / "ae" / "detector.json"))["loss"] == "oe"
    assert json.load(open(tmp_path / "models" / "gearbox" / "clear-ae" / "detector.json"))["loss"] == "mse"
    tested = _run("test", "--machine", "gearbox", "--name", "clear-ae", "--result-dir", tmp_path / "results", *common)
    assert tested.exit_code == 0 and os.path.isfile(tmp_path / "results" / "metrics_clear-ae_gearbox.json")
    refused = _run("fit", "--machine", "gearbox", "--name", "gmm", *common)
    assert refused.exit_code == 2 and "plain folder name other than" in refused.output
