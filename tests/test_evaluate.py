"""Notes of an evaluation: the conditions whose normals a threshold flags beyond chance."""

import os

import pytest

from asdkeras.data.records import ClipRecord
from asdkeras.evaluate import surplus_alarm_notes


def _records(section: str, domain: str, normals: int, anomalies: int = 0) -> list[ClipRecord]:
    return [ClipRecord(f"/data/{section}_{domain}_{label}_{i}.wav", "gearbox", "test", section, i, domain, label)
            for label, count in (("normal", normals), ("anomaly", anomalies)) for i in range(count)]


def test_five_of_ten_normals_flagged_at_an_intended_ten_percent_is_noted_with_what_to_do():
    records = _records("00", "target", 10, anomalies=10) + _records("00", "source", 10)
    decisions = [1] * 5 + [0] * 5 + [1] * 10 + [0] * 10  # the anomalies flagged do not count
    notes = surplus_alarm_notes("gearbox", "ensemble", records, decisions, 0.1)
    assert len(notes) == 1
    assert notes[0].startswith("gearbox / ensemble: section 00 target: 5 of 10 normal clips flagged where 10% is "
                               "intended (binomial p = 0.0016)")
    assert "calibrate with more of its normal clips" in notes[0]
    assert "'python cli.py calibrate --machine gearbox --section 00 CLIPS'" in notes[0]
    assert "--threshold-confidence" in notes[0]


def test_an_unlucky_draw_and_unlabelled_clips_are_not_noted():
    records = _records("01", "source", 10) + _records("01", "target", 50)
    decisions = [1] * 3 + [0] * 7 + [1] * 10 + [0] * 40  # p = 0.07 and 0.025 (11 of 50 would be 0.009)
    assert surplus_alarm_notes("gearbox", "ae", records, decisions, 0.1) == []
    unlabelled = [ClipRecord(f"/data/{i}.wav", "gearbox", "test", "02", i) for i in range(10)]
    assert surplus_alarm_notes("gearbox", "ae", unlabelled, [1] * 10, 0.1) == []


@pytest.mark.slow  # fits a detector (the one-layer level kind, a few seconds)
def test_evaluate_notes_each_condition_a_too_low_threshold_floods(level_kind, tiny_dataset, tmp_path):
    """A threshold below every score flags all 3 normals of each of the 6 conditions (p = 0.001 at 10 %)."""
    import json

    from asdkeras.evaluate import evaluate
    from asdkeras.fit import fit_detector, make_config
    from asdkeras.names import DETECTOR_FILE

    config = make_config("level", machine="fan", data_dir=tiny_dataset, cache_dir=str(tmp_path / "cache"),
                         models_dir=str(tmp_path / "models"), validation_fraction=0.5)
    fit_detector("level", config)
    path = os.path.join(config.folder(), DETECTOR_FILE)
    document = json.load(open(path))
    document["threshold"] = document["thresholds"][document["threshold_rule"]]["value"] = -1e9
    json.dump(document, open(path, "w"))
    flooded = evaluate(config.folder(), "fan", "level", tiny_dataset, str(tmp_path / "flooded"), str(tmp_path / "cache"))
    assert sorted(n.split(": ")[1] for n in flooded.notes) == [f"section {s} {d}" for s in ("00", "01", "02")
                                                               for d in ("source", "target")]
    assert all("3 of 3 normal clips flagged where 10% is intended" in n for n in flooded.notes)


def test_a_tflite_models_results_carry_the_same_notes(tmp_path):
    """``score --result-dir``: the sidecar's intended share gives the note ``test`` gives; a sidecar
    written before it was recorded gives none."""
    from asdkeras.evaluate import evaluate_scored
    from asdkeras.lite import ScoredClip

    sidecar = {"machine": "gearbox", "kind": "ae", "quantisation": "int8", "threshold": 0.5, "intended_flag_share": 0.1}
    scored = [ScoredClip(f"/data/gearbox/test/section_00_{domain}_test_normal_{i:04d}.wav", 1.0 if flagged else 0.0,
                         int(flagged))
              for domain in ("source", "target") for i, flagged in enumerate([domain == "target" and i < 6
                                                                              for i in range(10)])]
    evaluation = evaluate_scored(sidecar, scored, [], str(tmp_path / "with"))
    assert [n.split(" where")[0] for n in evaluation.notes] == [
        "gearbox / ae-tflite-int8: section 00 target: 6 of 10 normal clips flagged"]
    older = {k: v for k, v in sidecar.items() if k != "intended_flag_share"}
    assert evaluate_scored(older, scored, [], str(tmp_path / "without")).notes == []
