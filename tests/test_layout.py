import os

import pytest

from asdkeras.data.layout import (ClipRecord, apply_ground_truth, list_machines, load_ground_truth,
                                  parse_attributes, parse_filename, scan_split, sections, select, summarize)
from asdkeras.errors import AsdError
from conftest import REAL_AUDIO, needs_real_audio


def test_parse_labelled_train_name():
    r = parse_filename("/d/section_01_target_train_normal_0007_volt_1.0_wt_100.wav", "gearbox", "train")
    assert (r.machine, r.section, r.domain, r.split, r.label, r.index) == ("gearbox", "01", "target", "train", "normal", 7)
    assert r.attributes == "volt_1.0_wt_100"
    assert r.attribute_pairs == {"volt": "1.0", "wt": "100"}
    assert r.is_anomaly == 0


def test_parse_test_anomaly_with_toycar_attributes():
    r = parse_filename("x/section_00_source_test_anomaly_0049_car_G2_spd_34V_mic_1_noise_6.wav", "ToyCar", "test")
    assert r.label == "anomaly" and r.is_anomaly == 1 and r.index == 49
    assert r.attribute_pairs == {"car": "G2", "spd": "34V", "mic": "1", "noise": "6"}


def test_parse_anonymised_eval_name_has_unknown_label():
    r = parse_filename("e/section_03_0199.wav", "fan", "test")
    assert (r.section, r.index, r.domain, r.label, r.is_anomaly) == ("03", 199, None, None, None)


def test_irregular_attribute_string_is_kept_without_pairs():
    assert parse_attributes("m-n_W") == {"m-n": "W"}
    assert parse_attributes("noAttribute") == {}
    assert parse_attributes("") == {}
    r = parse_filename("section_00_source_train_normal_0000_noAttribute.wav", "slider", "train")
    assert r.attributes == "noAttribute" and r.attribute_pairs == {}


@pytest.mark.parametrize("name", ["normal_id_04_00000006.wav", "section_0_source_train_normal_0000_a.wav",
                                  "section_00_source_train_broken_0000_a.wav", "section_00_source.txt"])
def test_unparseable_name_is_a_one_line_error_naming_the_file(name):
    with pytest.raises(AsdError) as err:
        parse_filename(f"/d/{name}", "fan", "train")
    message = str(err.value)
    assert name in message and "section_XX_" in message and "\n" not in message


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(AsdError, match="no such folder"):
        scan_split(str(tmp_path), "fan", "train")
    (tmp_path / "dev_data" / "fan" / "train").mkdir(parents=True)
    with pytest.raises(AsdError, match="machines present: fan"):
        scan_split(str(tmp_path), "valve", "train")
    with pytest.raises(AsdError, match="holds no audio file"):
        scan_split(str(tmp_path), "fan", "train")
    with pytest.raises(AsdError, match="no such folder"):
        scan_split(str(tmp_path), "fan", "test")


def test_scan_reads_synthetic_tree(tiny_dataset):
    assert list_machines(tiny_dataset) == ["fan", "gearbox", "valve"]
    train = scan_split(tiny_dataset, "fan", "train")
    test = scan_split(tiny_dataset, "fan", "test")
    assert sections(train) == ["00", "01", "02"]
    assert len(select(train, domain="source")) == 18 and len(select(train, domain="target")) == 6
    assert len(select(test, label="anomaly", section="01", domain="target")) == 3
    assert [r.filename for r in train] == sorted(r.filename for r in train)
    rows = {row.machine: row for row in summarize(tiny_dataset)}
    assert rows["valve"].test_normal == 18 and rows["valve"].test_anomaly == 18


@needs_real_audio
def test_scan_reads_real_dcase2023_names(tmp_path):
    (tmp_path / "dev_data").mkdir()
    for machine in ("fan", "ToyTrain", "bearing"):
        os.symlink(os.path.join(REAL_AUDIO, "dcase2023-dev", machine), tmp_path / "dev_data" / machine)
    train = scan_split(str(tmp_path), "ToyTrain", "train")
    assert all(r.section == "00" and r.domain == "source" and r.label == "normal" for r in train)
    assert set(train[0].attribute_pairs) == {"car", "spd", "mic"}
    test = scan_split(str(tmp_path), "bearing", "test")
    assert {r.label for r in test} <= {"normal", "anomaly"} and test[0].attribute_pairs.keys() == {"vel", "loc"}


def test_ground_truth_csv_labels_anonymised_names(tmp_path):
    csv_path = tmp_path / "ground_truth_fan_section_03_test.csv"
    csv_path.write_text("section_03_0000.wav,1\nsection_03_0001.wav,0\n")
    domain_path = tmp_path / "ground_truth_domain_fan_section_03_test.csv"
    domain_path.write_text("section_03_0000.wav,0\nsection_03_0001.wav,1\n")
    records = [ClipRecord(path=f"/e/section_03_000{i}.wav", machine="fan", split="test", section="03", index=i)
               for i in range(3)]
    labelled = apply_ground_truth(records, load_ground_truth(str(csv_path)), load_ground_truth(str(domain_path)))
    assert [(r.label, r.domain) for r in labelled] == [("anomaly", "source"), ("normal", "target"), (None, None)]


def test_ground_truth_errors(tmp_path):
    with pytest.raises(AsdError, match="no such ground-truth file"):
        load_ground_truth(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("section_03_0000.wav\n")
    with pytest.raises(AsdError, match="bad.csv:1"):
        load_ground_truth(str(bad))
    odd = tmp_path / "odd.csv"
    odd.write_text("section_03_0000.wav,7\n")
    record = ClipRecord(path="/e/section_03_0000.wav", machine="fan", split="test", section="03", index=0)
    with pytest.raises(AsdError, match="expected 0 or 1"):
        apply_ground_truth([record], load_ground_truth(str(odd)))


def test_eval_names_get_labels_from_a_ground_truth_folder(tmp_path):
    from asdkeras.audio import write_wav_atomic
    from asdkeras.data.layout import labelled_test_records
    import numpy as np

    test_dir = tmp_path / "eval_data" / "fan" / "test"
    test_dir.mkdir(parents=True)
    for i in range(2):
        write_wav_atomic(str(test_dir / f"section_03_000{i}.wav"), np.zeros(16_000, np.float32))
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "ground_truth_fan_section_03_test.csv").write_text("section_03_0000.wav,1\nsection_03_0001.wav,0\n")
    (truth / "ground_truth_domain_fan_section_03_test.csv").write_text("section_03_0000.wav,1\nsection_03_0001.wav,0\n")
    unlabelled = labelled_test_records(str(tmp_path), "fan", "eval_data")
    assert [r.label for r in unlabelled] == [None, None]
    labelled = labelled_test_records(str(tmp_path), "fan", "eval_data", str(truth))
    assert [(r.label, r.domain) for r in labelled] == [("anomaly", "target"), ("normal", "source")]
    with pytest.raises(AsdError, match="no such ground-truth file"):
        labelled_test_records(str(tmp_path), "fan", "eval_data", str(tmp_path))
