import json

import numpy as np
import pytest

from asdkeras.metrics import (format_table, hmean, metrics_document, official_score, read_score_csv, score_summary,
                              section_metrics, write_metrics_json, write_result_csvs)

# One section, worked by hand. Source normals 0.1, 0.4; target normals 0.5, 0.9;
# a source anomaly 0.8 and a target anomaly 0.3.
LABELS = [0, 0, 0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.5, 0.9, 0.8, 0.3]
DOMAINS = ["source", "source", "target", "target", "source", "target"]


def test_each_domain_auc_uses_all_anomalies_of_the_section():
    r = section_metrics("00", LABELS, SCORES, DOMAINS)
    # AUC(source): normals {0.1, 0.4} against BOTH anomalies {0.8, 0.3}: 0.8>0.1, 0.8>0.4, 0.3>0.1, not 0.3>0.4 -> 3/4
    assert r.auc_source == pytest.approx(0.75)
    # AUC(target): normals {0.5, 0.9} against {0.8, 0.3}: only 0.8>0.5 -> 1/4
    assert r.auc_target == pytest.approx(0.25)
    # (same-domain anomalies only would give 1.0 and 0.0)


def test_pauc_is_the_mcclish_standardised_partial_auc_at_fpr_0_1():
    r = section_metrics("00", LABELS, SCORES, DOMAINS)
    # The top score is a normal: the ROC stays at TPR 0 up to FPR 0.25, so the area below FPR 0.1 is 0.
    # Standardised: 0.5 * (1 + (0 - 0.005) / (0.1 - 0.005)) = 0.5 * (1 - 1/19) = 9/19
    assert r.pauc == pytest.approx(9 / 19)
    better = section_metrics("01", LABELS, [0.1, 0.4, 0.5, 0.6, 0.95, 0.3], DOMAINS)
    # Now the top score is an anomaly: TPR 0.5 before the first false positive, area 0.1 * 0.5 = 0.05
    # -> 0.5 * (1 + (0.05 - 0.005) / 0.095) = 0.5 * (1 + 9/19) = 14/19
    assert better.pauc == pytest.approx(14 / 19)


def test_official_score_is_the_harmonic_mean_of_every_auc_and_pauc():
    a = section_metrics("00", LABELS, SCORES, DOMAINS)
    b = section_metrics("01", LABELS, [0.1, 0.4, 0.5, 0.6, 0.95, 0.3], DOMAINS)
    values = [a.auc_source, a.auc_target, a.pauc, b.auc_source, b.auc_target, b.pauc]
    assert official_score([a, b]) == pytest.approx(len(values) / sum(1 / v for v in values))
    zero = section_metrics("02", [0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2], ["source", "source", "target", "target"])
    assert zero.auc_source == 0.0 and 0 < official_score([zero]) < 1e-14  # floored at machine epsilon, not a crash


def test_precision_recall_f1_are_per_domain():
    decisions = [0, 1, 0, 1, 1, 0]
    r = section_metrics("00", LABELS, SCORES, DOMAINS, decisions)
    # source clips: labels [0, 0, 1], decisions [0, 1, 1] -> P = 1/2, R = 1, F1 = 2/3
    assert (r.precision_source, r.recall_source, r.f1_source) == pytest.approx((0.5, 1.0, 2 / 3))
    # target clips: labels [0, 0, 1], decisions [0, 1, 0] -> P = 0, R = 0, F1 = 0
    assert (r.precision_target, r.recall_target, r.f1_target) == (0.0, 0.0, 0.0)


def test_one_class_section_has_no_auc_and_says_why():
    result = section_metrics("00", [0, 0], [0.1, 0.2], ["source", "target"], [0, 1])
    assert (result.auc_source, result.auc_target, result.pauc) == (None, None, None)
    assert result.note == "section 00: only normal clips (2): no AUC" and result.false_alarm_target == 1.0
    summary = score_summary([result])
    assert summary["value"] is None and summary["rule"] is None and "not applicable" in summary["reason"]


def test_one_domain_gives_that_domains_auc_and_the_fallback_score():
    """DCASE 2020 and MIMII have no target domain: AUC(source) and pAUC, the official score N/A."""
    result = section_metrics("00", [0, 0, 1, 1], [0.1, 0.3, 0.2, 0.9], ["source"] * 4)
    assert result.auc_source == 0.75 and result.auc_target is None and result.pauc is not None
    assert result.note == "section 00: no target normals: no AUC(target)"
    assert official_score([result]) is None
    summary = score_summary([result])
    assert summary["rule"] == "fallback" and summary["value"] == pytest.approx(hmean([0.75, result.pauc]))
    table = format_table("fan", "ae", [result])
    assert "official score not applicable (section 00: no target normals" in table and "-" in table.splitlines()[2]


def test_result_csvs_are_headerless_and_sorted_by_file_name(tmp_path):
    names = ["section_00_source_test_normal_0002_a.wav", "section_00_source_test_anomaly_0000_a.wav",
             "section_00_source_test_normal_0001_a.wav"]
    score_path, decision_path = write_result_csvs(str(tmp_path), "fan", "00", names, [0.5, 2.0, 0.25], [0, 1, 0])
    assert score_path.endswith("anomaly_score_fan_section_00_test.csv")
    assert open(score_path).read().splitlines() == [
        "section_00_source_test_anomaly_0000_a.wav,2.0",
        "section_00_source_test_normal_0001_a.wav,0.25",
        "section_00_source_test_normal_0002_a.wav,0.5"]
    assert open(decision_path).read().splitlines()[0] == "section_00_source_test_anomaly_0000_a.wav,1"
    assert read_score_csv(score_path)["section_00_source_test_normal_0002_a.wav"] == 0.5


def test_metrics_json_layout_and_table(tmp_path):
    results = [section_metrics("00", LABELS, SCORES, DOMAINS, [0, 1, 0, 1, 1, 0])]
    path = write_metrics_json(str(tmp_path), metrics_document("fan", "ae", results, threshold=0.7))
    document = json.load(open(path))
    assert path.endswith("metrics_ae_fan.json")
    assert set(document["sections"]["00"]) >= {"auc_source", "auc_target", "pauc", "f1_source"}
    assert document["official_score"] == pytest.approx(official_score(results))
    table = format_table("fan", "ae", results)
    assert "0.7500" in table and "official score" in table and np.isfinite(document["threshold"])
