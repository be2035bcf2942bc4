"""The detector type: save/load round trip, format versions, atomic folders, generic scoring."""

import json
import os

import numpy as np
import pytest

from asdkeras.detector import FORMAT_VERSION, Detector, read_detector_json, save_atomically
from asdkeras.errors import AsdError
from asdkeras.features import LogMelConfig
from asdkeras.frontend import ImageFrontend, LogMelFrontend, frontend_from_settings
from asdkeras.models.autoencoder import autoencoder_scoring_model, build_autoencoder
from asdkeras.atomic import write_json


def _detector(threshold=0.5):
    from asdkeras.models.autoencoder import autoencoder_loss

    frontend = LogMelFrontend(LogMelConfig())
    network = build_autoencoder(640, np.zeros(640), np.ones(640))
    network.compile(optimizer="adam", loss=autoencoder_loss("oe"))  # as after a fit: must not reach the file
    model = autoencoder_scoring_model(network, *frontend.input_shape, 5)
    return Detector(kind="ae", machine="fan", frontend=frontend, model=model, score_units="error",
                    thresholds={"quantile": {"value": threshold, "rule": "gamma", "description": "test"}},
                    threshold_rule="quantile", normal_scores={"mean": 0.3, "std": 0.1},
                    info={"clips": {"train_normal": 3}, "outlier": "slider"})


def test_save_and_load_round_trip_keeps_scores_threshold_and_settings(tmp_path):
    detector = _detector()
    folder = detector.save(str(tmp_path / "fan" / "ae"), {"config.json": {"epochs": 1}})
    assert sorted(os.listdir(folder)) == ["config.json", "detector.json", "model.keras"]
    document = read_detector_json(folder)
    assert document["format"] == FORMAT_VERSION and document["frontend"]["sample_rate"] == 16000
    assert document["frontend"]["clip_samples"] == 160000 and document["input_shape"] == [313, 128]
    assert document["score_direction"] == "higher is more anomalous" and document["threshold"] == 0.5
    loaded = Detector.load(folder)
    frames = np.random.default_rng(0).standard_normal((2, 313, 128)).astype("float32")
    np.testing.assert_allclose(loaded.score_features(frames), detector.score_features(frames), rtol=1e-6)
    assert loaded.threshold == 0.5 and loaded.info["outlier"] == "slider" and loaded.frontend == detector.frontend
    assert loaded.decide([0.4, 0.6]).tolist() == [0, 1]


def test_older_and_damaged_folders_are_one_line_errors(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "detector.json").write_text(json.dumps({"kind": "ae", "machine": "fan", "threshold": 1.0}))
    with pytest.raises(AsdError, match=r"older asdkeras .*python cli.py fit --machine fan --model ae") as err:
        Detector.load(str(old))
    assert "\n" not in str(err.value)
    (old / "detector.json").write_text("{not json")
    with pytest.raises(AsdError, match="damaged"):
        Detector.load(str(old))
    with pytest.raises(AsdError, match="train one first"):
        read_detector_json(str(tmp_path / "nothing"))


def test_unknown_threshold_rule_is_refused():
    with pytest.raises(AsdError, match="not one of this detector's"):
        Detector(kind="ae", machine="fan", frontend=None, model=None, score_units="", thresholds={"quantile": {}},
                 threshold_rule="eq2", normal_scores={})


def test_failed_save_keeps_the_previous_detector(tmp_path):
    folder = str(tmp_path / "fan" / "ae")
    save_atomically(folder, lambda d: write_json(os.path.join(d, "detector.json"), {"threshold": 1.0}))

    def broken(d):
        write_json(os.path.join(d, "detector.json"), {"threshold": 2.0})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_atomically(folder, broken)
    assert json.load(open(os.path.join(folder, "detector.json")))["threshold"] == 1.0
    assert os.listdir(tmp_path / "fan") == ["ae"]


@pytest.mark.parametrize("frontend", [LogMelFrontend(), ImageFrontend()])
def test_frontend_settings_round_trip(frontend):
    assert frontend_from_settings(frontend.settings()) == frontend


def test_frontend_of_another_sample_rate_asks_to_refit():
    with pytest.raises(AsdError, match="re-fit"):
        frontend_from_settings({**LogMelFrontend().settings(), "sample_rate": 22050})
