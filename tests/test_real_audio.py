"""The whole CLI on real recordings: MIMII fan id_00 at 0 dB SNR, 8-channel, arranged as a DCASE tree.

Too few clips to judge accuracy (12 for training); this checks that real multichannel audio goes
through loading, conversion, training, scoring and the official outputs, and prints the score.
"""

import csv
import glob
import json
import math
import os

import pytest
from click.testing import CliRunner

import cli
from conftest import REAL_AUDIO, needs_real_audio

pytestmark = pytest.mark.slow  # fits models: the full suite only, not the fast lane (-m "not slow")

MIMII = os.path.join(REAL_AUDIO, "mimii-0dB", "fan", "id_00")


def _dcase_tree(root):
    normals = sorted(glob.glob(os.path.join(MIMII, "normal", "*.wav")))
    anomalies = sorted(glob.glob(os.path.join(MIMII, "abnormal", "*.wav")))
    train = root / "dev_data" / "fan" / "train"
    test = root / "dev_data" / "fan" / "test"
    train.mkdir(parents=True)
    test.mkdir(parents=True)
    for i, path in enumerate(normals[:12]):
        os.symlink(path, train / f"section_00_source_train_normal_{i:04d}_id_00.wav")
    for i, path in enumerate(normals[12:20]):
        domain = "source" if i % 2 == 0 else "target"
        os.symlink(path, test / f"section_00_{domain}_test_normal_{i:04d}_id_00.wav")
    for i, path in enumerate(anomalies[:20]):
        domain = "source" if i % 2 == 0 else "target"
        os.symlink(path, test / f"section_00_{domain}_test_anomaly_{i:04d}_id_00.wav")


@needs_real_audio
def test_autoencoder_on_real_8_channel_mimii_fan(tmp_path):
    _dcase_tree(tmp_path)
    common = ["--data", str(tmp_path), "--models-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    runner = CliRunner()
    fitted = runner.invoke(cli.cli, ["fit", "--machine", "fan", "--loss", "mse", "--outlier", "none",
                                     "--epochs", "5", *common])
    assert fitted.exit_code == 0, fitted.output
    assert "note: 12 files read: 12 multichannel, averaged to mono" in fitted.output
    tested = runner.invoke(cli.cli, ["test", "--machine", "fan", "--result-dir", str(tmp_path / "results"), *common])
    assert tested.exit_code == 0, tested.output
    rows = list(csv.reader(open(tmp_path / "results" / "anomaly_score_fan_section_00_test.csv")))
    assert len(rows) == 28 and all(math.isfinite(float(score)) for _, score in rows)
    metrics = json.load(open(tmp_path / "results" / "metrics_ae_fan.json"))
    print(f"\nreal MIMII fan id_00 (0 dB), clear AE on 12 clips: {metrics['sections']['00']}")
    assert 0 < metrics["official_score"] <= 1


@needs_real_audio
def test_mimii_folder_as_it_comes_fit_and_test_with_the_one_domain_fallback(tmp_path):
    """MIMII's id_00/normal, id_00/abnormal read directly: derived split recorded, AUC(source) and pAUC."""
    mimii = os.path.join(REAL_AUDIO, "mimii-0dB")
    common = ["--data", mimii, "--models-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    runner = CliRunner()
    fitted = runner.invoke(cli.cli, ["fit", "--machine", "fan", "--model", "gmm", *common])
    assert fitted.exit_code == 0, fitted.output
    split = json.load(open(tmp_path / "models" / "fan" / "gmm" / "split.json"))
    assert split["layout"] == "mimii" and len(split["train"]) == 10 and len(split["test"]) == 30
    assert not set(split["train"]) & set(split["test"])
    tested = runner.invoke(cli.cli, ["test", "--machine", "fan", "--model", "gmm", "--result-dir",
                                     str(tmp_path / "results"), *common])
    assert tested.exit_code == 0, tested.output
    assert "official score not applicable (section 00: no target normals" in tested.output
    metrics = json.load(open(tmp_path / "results" / "metrics_gmm_fan.json"))
    assert metrics["official_score"] is None and metrics["score"]["rule"] == "fallback"
    assert metrics["sections"]["00"]["auc_source"] > 0.7  # measured 0.935 with 10 training normals
    # 1 clip held out is too few: the threshold comes from out-of-fold scores. On in-sample scores
    # it had flagged every test normal (false alarms 1.0); measured 0.0 with recall 0.45.
    detector = json.load(open(tmp_path / "models" / "fan" / "gmm" / "detector.json"))
    assert "out-of-fold scores" in detector["thresholds"]["quantile"]["description"]
    assert metrics["sections"]["00"]["false_alarm_source"] <= 0.3
    page = runner.invoke(cli.cli, ["report", "--machine", "fan", "--result-dir", str(tmp_path / "results"),
                                   "--models-dir", str(tmp_path / "models"), "--data", mimii, "--out", str(tmp_path / "rep")])
    assert page.exit_code == 0, page.output
    html = open(tmp_path / "rep" / "report_fan.html").read()
    assert "*</td>" in html and "official score (* fallback)" in html  # the fallback score is marked
    strict = runner.invoke(cli.cli, ["test", "--machine", "fan", "--model", "gmm", "--strict", "--result-dir",
                                     str(tmp_path / "strict"), *common])
    assert strict.exit_code == 2 and "--strict asks for every official figure" in strict.output


@needs_real_audio
def test_channel_choice_is_saved_with_the_detector_and_used_by_test(tmp_path):
    mimii = os.path.join(REAL_AUDIO, "mimii-0dB")
    common = ["--data", mimii, "--models-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    runner = CliRunner()
    fitted = runner.invoke(cli.cli, ["fit", "--machine", "fan", "--model", "gmm", "--channel", "0", *common])
    assert fitted.exit_code == 0, fitted.output
    assert "10 multichannel, channel 0 kept" in fitted.output
    assert json.load(open(tmp_path / "models" / "fan" / "gmm" / "detector.json"))["frontend"]["channel"] == 0
    tested = runner.invoke(cli.cli, ["test", "--machine", "fan", "--model", "gmm", "--result-dir",
                                     str(tmp_path / "results"), *common])
    assert tested.exit_code == 0, tested.output
    mean_fit = runner.invoke(cli.cli, ["fit", "--machine", "fan", "--model", "gmm", "--name", "gmm-mean", *common])
    assert mean_fit.exit_code == 0
    # Different channel choices give different features (separate cache entries), hence other scores.
    channel0 = json.load(open(tmp_path / "models" / "fan" / "gmm" / "detector.json"))["normal_scores"]["mean"]
    averaged = json.load(open(tmp_path / "models" / "fan" / "gmm-mean" / "detector.json"))["normal_scores"]["mean"]
    assert channel0 != averaged
    bad = runner.invoke(cli.cli, ["fit", "--machine", "fan", "--model", "gmm", "--channel", "9", "--name", "c9", *common])
    assert bad.exit_code == 2 and "has 8 channel(s), cannot pick channel 9" in bad.output
