"""Calibrating saved detectors with normal clips of a new operating condition (asdkeras/calibration.py).

Through the command line with every built-in kind: test_cli_e2e.py (fit all, calibrate, test, export).
"""

import json
import os
from dataclasses import asdict

import pytest

from asdkeras import calibration
from asdkeras.data.synth import more_normals
from asdkeras.errors import AsdError, SkippedFiles
from asdkeras.fit import make_config
from conftest import TINY

SEED = 7  # tiny_dataset's


@pytest.fixture(scope="module")
def new_condition(tiny_dataset, tmp_path_factory):
    """Four further target normals of each fan section of tiny_dataset (section -> paths)."""
    return more_normals(str(tmp_path_factory.mktemp("calibration")), "fan", TINY, SEED, "train", "target", 4)


def test_more_normals_continue_the_datasets_clips(tiny_dataset, new_condition):
    from asdkeras.data.layout import scan_split

    assert sorted(new_condition) == ["00", "01", "02"]
    names = [os.path.basename(p) for p in new_condition["00"]]
    assert [n.split("_")[5] for n in names] == ["0002", "0003", "0004", "0005"]  # after the dataset's 0000, 0001
    assert all(n.startswith("section_00_target_train_normal_") for n in names)
    attributes = {r.attributes for r in scan_split(tiny_dataset, "fan", "train") if r.domain == "target"
                  and r.section == "00"}
    assert {n.split("_", 6)[6][:-4] for n in names} <= attributes  # the same operating condition


def test_calibration_clips_join_the_held_out_normals_of_a_network_and_the_training_normals_of_a_gmm(
        tiny_dataset, new_condition):
    clips = tuple({"path": p, "section": "01", "domain": "target"} for p in new_condition["01"])
    for kind, joins in (("ae", 1), ("gmm", 0)):
        plain = make_config(kind, machine="fan", data_dir=tiny_dataset)
        calibrated = make_config(kind, machine="fan", data_dir=tiny_dataset)
        calibrated.calibration = clips
        before, after = plain.normal_split(), calibrated.normal_split()
        assert after[1 - joins] == before[1 - joins]  # the fit's own split is untouched
        added = after[joins][len(before[joins]):]
        assert [r.path for r in added] == list(new_condition["01"])
        assert {(r.section, r.domain, r.label) for r in added} == {("01", "target", "normal")}
        document = json.loads(json.dumps(asdict(calibrated)))  # as config.json keeps it
        assert type(calibrated).from_document(document).calibration == clips


def test_a_clip_given_again_takes_its_new_section():
    before = ({"path": "/a.wav", "section": "00", "domain": "target"}, {"path": "/b.wav", "section": "00", "domain": "target"})
    added = [{"path": "/b.wav", "section": "01", "domain": "target"}, {"path": "/c.wav", "section": "01", "domain": "target"}]
    assert [(c["path"], c["section"]) for c in calibration.merged(before, added)] == [
        ("/a.wav", "00"), ("/b.wav", "01"), ("/c.wav", "01")]


def test_calibration_clips_are_checked_before_any_detector_changes(tiny_dataset, new_condition, tmp_path):
    paths = new_condition["00"]
    clips = calibration.calibration_clips(paths, "00", "target", ["00", "01", "02"], None, SkippedFiles())
    assert [c["path"] for c in clips] == [os.path.abspath(p) for p in paths]
    # DCASE names say each clip's section and domain: one call for several sections
    named = calibration.calibration_clips(paths[:2] + new_condition["02"][:1], None, None, ["00", "01", "02"], None,
                                          SkippedFiles())
    assert [(c["section"], c["domain"]) for c in named] == [("00", "target"), ("00", "target"), ("02", "target")]
    given = calibration.calibration_clips(paths[:2], "01", "source", ["00", "01"], None, SkippedFiles())
    assert {(c["section"], c["domain"]) for c in given} == {("01", "source")}  # what is given applies to all
    plain = tmp_path / "plain"
    plain.mkdir()
    for index, path in enumerate(paths[:2]):
        os.link(path, plain / f"clip{index}.wav")
    with pytest.raises(AsdError, match="clip0.wav: its name does not say its section and the detector knows sections "
                                       "00, 01, 02: name it with --section"):
        calibration.calibration_clips([str(plain)], None, None, ["00", "01", "02"], None, SkippedFiles())
    alone = calibration.calibration_clips([str(plain)], None, None, ["00"], None, SkippedFiles())
    assert {(c["section"], c["domain"]) for c in alone} == {("00", "target")}  # a new condition: target
    with pytest.raises(AsdError, match="section '03' is not one of the detector's"):
        calibration.calibration_clips(paths, "03", "target", ["00", "01", "02"], None, SkippedFiles())
    with pytest.raises(AsdError, match="section 02 is not one of the detector's .00, 01.; a new machine"):
        calibration.calibration_clips(new_condition["02"], None, None, ["00", "01"], None, SkippedFiles())
    anomaly = tmp_path / "section_00_target_test_anomaly_0001.wav"
    os.link(paths[0], anomaly)
    with pytest.raises(AsdError, match="named as an anomaly; calibrate with normal clips only"):
        calibration.calibration_clips([str(anomaly)] + paths, None, None, ["00"], None, SkippedFiles())
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot audio")
    skipped = SkippedFiles()
    with pytest.raises(AsdError, match="1 readable clip"):
        calibration.calibration_clips([paths[0], str(broken)], "00", "target", ["00"], None, skipped)
    assert str(broken) in skipped  # named with its reason in the run's summary
    config = make_config("ae", machine="fan", data_dir=tiny_dataset)
    test_clip = os.path.join(tiny_dataset, "dev_data", "fan", "test", next(name for name in sorted(os.listdir(
        os.path.join(tiny_dataset, "dev_data", "fan", "test"))) if "_normal_" in name))
    with pytest.raises(AsdError, match="one of fan's test clips .1 of the 2 given.; calibrate with normal clips"):
        calibration.check_new(clips[:1] + [{"path": test_clip, "section": "00", "domain": "target"}], config)
    trained = os.path.abspath(config.normal_split()[0][0].path)
    with pytest.raises(AsdError, match="one of fan's training clips .1 of the 2 given.; the detectors know it"):
        calibration.check_new(clips[:1] + [{"path": trained, "section": "00", "domain": "target"}], config)
    calibration.check_new(clips, config)  # new clips pass
    with pytest.raises(AsdError, match="no saved detector to calibrate; run 'python cli.py fit --machine fan"):
        calibration.calibrate("fan", paths, "00", models_dir=str(tmp_path / "models"), data_dir=tiny_dataset)


def test_a_kind_without_a_calibrate_of_its_own_is_fitted_again_with_the_clips(level_kind, tiny_dataset, new_condition,
                                                                             tmp_path):
    from asdkeras.fit import fit_detector, load_config

    common = {"data_dir": tiny_dataset, "cache_dir": str(tmp_path / "cache"), "models_dir": str(tmp_path / "models")}
    fit_detector("level", make_config("level", machine="fan", **common))
    done = calibration.calibrate("fan", [os.path.dirname(new_condition["02"][0])], "02", **common)
    folder = os.path.join(common["models_dir"], "fan", "level")
    assert [(kind, path) for kind, path, _ in done.done] == [("level", folder)]
    assert [c["path"] for c in load_config(folder, "level").calibration] == new_condition["02"]
    lines = done.lines()
    assert lines[0] == "fan: 4 normal clips added; calibration clips in all: 4 of 02/target"
    assert lines[1] == "== level: fitted again" and lines[2].startswith(f"saved level for fan to {folder}")
    again = calibration.calibrate("fan", new_condition["00"][:2] + new_condition["02"], None, **common)
    assert again.lines()[0] == ("fan: 2 normal clips added (4 given again); calibration clips in all: 2 of 00/target, "
                                "4 of 02/target")  # a clip given again counts once


def test_a_calibration_that_stops_halfway_says_what_is_done_and_how_to_finish(level_kind, tiny_dataset, new_condition,
                                                                              tmp_path, monkeypatch):
    import asdkeras.ensemble
    from asdkeras.fit import fit_detector

    common = {"data_dir": tiny_dataset, "cache_dir": str(tmp_path / "cache"), "models_dir": str(tmp_path / "models")}
    fit_detector("level", make_config("level", machine="fan", **common))
    ensemble = tmp_path / "models" / "fan" / "ensemble"
    ensemble.mkdir()
    (ensemble / "detector.json").write_text("{}")
    (ensemble / "config.json").write_text(json.dumps({"mode": "battery", "combine": "mean", "kinds": ["level"]}))
    (ensemble / "ensemble.json").write_text(json.dumps({"members": ["level"], "combine": None, "reason": "the only one"}))

    def broken(*args, **kwargs):
        raise AsdError("fan: the disk is full")

    monkeypatch.setattr(asdkeras.ensemble, "fit_ensemble", broken)
    with pytest.raises(AsdError, match=r"^fan: the disk is full \(calibrated before it stopped: level; the same "
                                       r"calibrate command again finishes the others\)$"):
        calibration.calibrate("fan", new_condition["00"], "00", **common)
