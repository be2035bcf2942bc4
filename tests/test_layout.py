import os
import shutil

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


def test_dcase2020_name_parses_with_the_machine_id_as_section():
    record = parse_filename("/d/pump/test/anomaly_id_04_00000012.wav", "pump", "test")
    assert (record.section, record.domain, record.label, record.index) == ("04", "source", "anomaly", 12)


@pytest.mark.parametrize("name", ["normal_id_x_00000006.wav", "section_0_source_train_normal_0000_a.wav",
                                  "section_00_source_train_broken_0000_a.wav", "section_00_source.txt"])
def test_unparseable_name_is_a_one_line_error_naming_the_file(name):
    with pytest.raises(AsdError) as err:
        parse_filename(f"/d/{name}", "fan", "train")
    message = str(err.value)
    assert name in message and "section_XX_" in message and "\n" not in message


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(AsdError, match="no such machine folder \\(machines present: none\\)"):
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


# --- Other public layouts -------------------------------------------------------------------------

def _copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(src, dst)


def test_dcase2021_source_and_target_test_folders(tiny_dataset, tmp_path):
    from asdkeras.data.layout import detect_layout

    src = os.path.join(tiny_dataset, "dev_data", "fan")
    for name in os.listdir(os.path.join(src, "train")):
        _copy(os.path.join(src, "train", name), tmp_path / "dev_data" / "fan" / "train" / name)
    for name in os.listdir(os.path.join(src, "test")):
        folder = "source_test" if "_source_" in name else "target_test"
        _copy(os.path.join(src, "test", name), tmp_path / "dev_data" / "fan" / folder / name)
    assert detect_layout(str(tmp_path / "dev_data" / "fan")).name == "dcase2021"
    test = scan_split(str(tmp_path), "fan", "test")
    assert len(test) == 36 and {r.domain for r in test} == {"source", "target"}
    assert [r.filename for r in test] == sorted(r.filename for r in test)
    assert summarize(str(tmp_path))[0].layout == "dcase2021"


@needs_real_audio
def test_dcase2020_names_id_as_section_one_domain_and_no_train_folder():
    root = os.path.join(REAL_AUDIO, "dcase2020-dev")
    rows = {row.machine: row for row in summarize(root)}
    assert set(rows) == {"ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"}
    assert rows["pump"].layout == "dcase2020" and rows["pump"].sections == ("04",)
    assert (rows["pump"].train_source, rows["pump"].test_normal, rows["pump"].test_anomaly) == (0, 3, 3)
    test = scan_split(root, "pump", "test")
    assert {(r.section, r.domain) for r in test} == {("04", "source")} and {r.label for r in test} == {"normal", "anomaly"}


def test_mimii_under_an_snr_prefix_and_a_plain_folder_get_a_derived_split(tiny_dataset, tmp_path):
    from asdkeras.data.layout import list_machines
    from asdkeras.data.layouts import layouts

    test_dir = os.path.join(tiny_dataset, "dev_data", "valve", "test")
    normals = sorted(n for n in os.listdir(test_dir) if "_normal_" in n)
    anomalies = sorted(n for n in os.listdir(test_dir) if "_anomaly_" in n)
    mimii = tmp_path / "mimii" / "-6_dB_pump" / "pump"
    for i, name in enumerate(normals):
        _copy(os.path.join(test_dir, name), mimii / "id_02" / "normal" / f"{i:08d}.wav")
    for i, name in enumerate(anomalies[:5]):
        _copy(os.path.join(test_dir, name), mimii / "id_02" / "abnormal" / f"{i:08d}.wav")
    root = str(tmp_path / "mimii")
    assert list_machines(root) == ["pump"]
    train, test = scan_split(root, "pump", "train"), scan_split(root, "pump", "test")
    assert len(train) == 13 and len(test) == 10 and {r.section for r in train + test} == {"02"}
    assert not {r.path for r in train} & {r.path for r in test}
    assert (train, test) == layouts()["mimii"].split(str(mimii), "pump")  # deterministic

    plain = tmp_path / "plain" / "compressor"
    for i, name in enumerate(normals[:6]):
        _copy(os.path.join(test_dir, name), plain / "normal" / f"n{i}.wav")
    _copy(os.path.join(test_dir, anomalies[0]), plain / "abnormal" / "a0.wav")
    _copy(os.path.join(test_dir, anomalies[1]), plain / "recorded_today.wav")
    row = summarize(str(tmp_path / "plain"))[0]
    assert (row.machine, row.layout, row.train_source, row.test_normal, row.test_anomaly, row.test_unlabelled) == \
        ("compressor", "plain", 5, 1, 1, 1)


def test_a_new_layout_is_one_class_and_a_registration(tmp_path):
    """A layout of ``<machine>/good/`` and ``<machine>/bad/`` folders, plugged in without touching any other file."""
    from asdkeras.data import layouts
    from asdkeras.data.layout import list_machines, scan_split, summarize

    class GoodBad(layouts.DerivedSplitLayout):
        name = "good-bad"
        description = "good/ and bad/ folders"

        def matches(self, folder, entries):
            return "good" in entries

        def sections(self, base):
            return [("00", base)]

        def split(self, base, machine, seed=0):
            renamed = {"normal": "good", "abnormal": "bad"}
            records = {split: [] for split in ("train", "test")}
            for label, sub in renamed.items():
                for index, name in enumerate(sorted(os.listdir(os.path.join(base, sub)))):
                    split = "train" if label == "normal" and index % 2 == 0 else "test"
                    records[split].append(ClipRecord(os.path.join(base, sub, name), machine, split, "00", index,
                                                     "source", "anomaly" if label == "abnormal" else label))
            return records["train"], records["test"]

    machine = tmp_path / "press"
    for sub, count in (("good", 4), ("bad", 1)):
        (machine / sub).mkdir(parents=True)
        for i in range(count):
            (machine / sub / f"{i}.wav").write_bytes(b"")
    layouts.register(GoodBad())
    try:
        assert list_machines(str(tmp_path)) == ["press"]
        assert [r.filename for r in scan_split(str(tmp_path), "press", "train")] == ["0.wav", "2.wav"]
        assert [r.label for r in scan_split(str(tmp_path), "press", "test")] == ["normal", "normal", "anomaly"]
        assert summarize(str(tmp_path))[0].layout == "good-bad"
    finally:
        layouts.unregister("good-bad")
