"""Per-condition score statistics from few clips: corrections for clips the network trained on, spread
floors, prediction widening."""

import warnings

import numpy as np
import pytest

from asdkeras.models.condition_statistics import condition_statistics, prediction_scale
from conftest import loaded_after


def test_every_clip_counts_and_the_trained_on_ones_are_corrected_by_the_held_out_ones():
    rng = np.random.default_rng(1)
    sections = ["00"] * 70
    domains = ["source"] * 60 + ["target"] * 10
    held = np.array([False] * 40 + [True] * 20 + [False] * 9 + [True])
    # an overfitting network: trained-on clips score 0.2 lower and twice as tight as held-out ones
    raw = np.concatenate([rng.normal(0.8, 0.05, 40), rng.normal(1.0, 0.1, 20), rng.normal(2.0, 0.05, 9), [2.2]])
    stats, summary = condition_statistics(raw, sections, domains, held)
    source = summary["corrections"]["source"]
    # a gap of many standard errors is kept nearly whole (shrunk by its sampling error)
    assert source["gap"] == pytest.approx(raw[40:60].mean() - raw[:40].mean(), rel=0.05)
    measured_ratio = raw[40:60].std(ddof=1) / raw[:40].std(ddof=1)  # 1.53 in this draw, 2 in truth
    assert 1.3 < source["spread_ratio"] < measured_ratio
    assert summary["corrections"]["target"] == source  # 1 held-out target clip: the source's corrections
    assert stats["00/source"][0] == pytest.approx(raw[40:60].mean(), abs=0.02)  # as if none were trained on
    assert stats["00/target"][0] == pytest.approx(raw[60:69].mean() + source["gap"], abs=0.05)
    assert summary["00/target"]["clips"] == 10


def test_a_network_that_does_not_overfit_is_barely_corrected_and_new_clips_widen_the_spread():
    rng = np.random.default_rng(5)
    raw = rng.normal(1.0, 0.1, 60)
    held = np.arange(60) % 5 == 0
    plain, summary = condition_statistics(raw, ["00"] * 60, ["source"] * 60, held)
    assert plain["00/source"] == pytest.approx((raw.mean(), raw.std(ddof=1)), rel=0.05)
    # differences within their sampling error are shrunk away, not applied as corrections
    assert summary["corrections"]["source"]["gap"] < 0.01 and summary["corrections"]["source"]["spread_ratio"] < 1.1
    widened, summary = condition_statistics(raw, ["00"] * 60, ["source"] * 60, held, quantile=0.9)
    assert widened["00/source"][1] > plain["00/source"][1] and "widened" in summary["00/source"]["rule"]


def test_without_held_out_clips_nothing_is_corrected():
    raw = np.arange(12, dtype=float)
    stats, summary = condition_statistics(raw, ["00"] * 12, ["source"] * 8 + ["target"] * 4, np.zeros(12, bool))
    assert set(stats) == {"00/source", "00/target"} and summary["corrections"]["source"]["gap"] == 0.0
    assert stats["00/target"][0] == pytest.approx(9.5)


def test_a_target_condition_spreads_at_least_as_its_sections_source():
    rng = np.random.default_rng(3)
    source = rng.normal(1.0, 0.1, 50)
    tight, wide = rng.normal(1.5, 0.02, 10), rng.normal(1.5, 0.3, 10)
    raw = np.concatenate([source, tight, source, wide, tight])
    sections = ["00"] * 60 + ["01"] * 60 + ["02"] * 10  # section 02 has no source clips
    domains = (["source"] * 50 + ["target"] * 10) * 2 + ["target"] * 10
    stats, summary = condition_statistics(raw, sections, domains, np.zeros(raw.size, bool))
    assert stats["00/target"] == pytest.approx((tight.mean(), source.std(ddof=1)))
    assert "its section's source spread" in summary["00/target"]["rule"]
    assert stats["01/target"] == pytest.approx((wide.mean(), wide.std(ddof=1)))  # wider than the source: its own
    assert stats["02/target"] == pytest.approx((tight.mean(), tight.std(ddof=1)))  # nothing to borrow from
    assert stats["00/source"][1] == pytest.approx(source.std(ddof=1))  # a source keeps its own spread


def test_the_prediction_scale_makes_a_new_normal_exceed_the_threshold_as_intended():
    from asdkeras.scoring import prediction_threshold

    rng = np.random.default_rng(4)
    measured = rng.normal(3.0, 2.0, (20000, 5))  # 5 held-out clips of a condition, 20000 times
    new = rng.normal(3.0, 2.0, 20000)
    widened = measured.std(axis=1, ddof=1) * prediction_scale(5, 0.9)
    z = (new - measured.mean(axis=1)) / widened
    threshold = prediction_threshold(z[:100], ["source"] * 100, 0.9, "test clips")
    assert np.mean(z > threshold["value"]) == pytest.approx(0.10, abs=0.01)
    assert prediction_scale(5, 0.9) == pytest.approx(1.31, abs=0.01) and prediction_scale(1000, 0.9) < 1.01
    assert threshold["rule"] == "condition-prediction" and set(threshold["flagged_share_by_group"]) == {"source"}


def test_a_tolerance_threshold_keeps_the_quantile_in_as_many_conditions_as_its_confidence():
    import scipy.stats

    from asdkeras.scoring import prediction_threshold

    rng = np.random.default_rng(5)
    measured = rng.normal(3.0, 2.0, (20000, 10))  # a target condition's 10 clips, 20000 times
    level = prediction_threshold(np.zeros(3), ["target"] * 3, 0.9, "test clips", confidence=0.75)
    threshold = measured.mean(axis=1) + level["value"] * measured.std(axis=1, ddof=1) * prediction_scale(10, 0.9, 0.75)
    kept = scipy.stats.norm.cdf(threshold, 3.0, 2.0)  # the share of the condition's new normals below it
    assert np.mean(kept >= 0.9) == pytest.approx(0.75, abs=0.01)
    assert np.mean(1 - kept) == pytest.approx(0.073, abs=0.005)  # on average fewer than the intended 10 %
    assert prediction_scale(10, 0.9, 0.75) > prediction_scale(10, 0.9) > prediction_scale(50, 0.9, 0.75) > 1
    # a few clips (a section's target clips split across folds): finite, decreasing, and without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        few = [prediction_scale(n, 0.9, 0.75) for n in range(2, 8)]
    assert np.all(np.isfinite(few)) and np.all(np.diff(few) < 0) and few[0] == pytest.approx(3.115, abs=0.001)
    assert level["confidence"] == 0.75 and "tolerance" in level["description"]


def test_the_statistics_record_the_confidence_they_were_widened_for():
    raw = np.random.default_rng(6).normal(0, 1, 20)
    _, plain = condition_statistics(raw, ["00"] * 20, ["target"] * 20, np.zeros(20, bool), quantile=0.9)
    stats, summary = condition_statistics(raw, ["00"] * 20, ["target"] * 20, np.zeros(20, bool), quantile=0.9,
                                          confidence=0.75)
    assert stats["00/target"][1] == pytest.approx(raw.std(ddof=1) * prediction_scale(20, 0.9, 0.75))
    assert summary["00/target"]["rule"].endswith("at 0.75 confidence") and "confidence" not in plain["00/target"]["rule"]


def test_the_statistics_and_the_thresholds_import_without_tensorflow():
    """Benchmarks simulate thresholds from these, and the GMM's fit uses them, without loading TensorFlow."""
    assert loaded_after("import asdkeras.models.condition_statistics, asdkeras.scoring") == set()
