import numpy as np
import pytest
import scipy.stats

from asdkeras.errors import AsdError
from asdkeras.scoring import decide, eq2_threshold, quantile_threshold, score_statistics


def test_gamma_rule_recovers_the_quantile_of_gamma_scores():
    scores = scipy.stats.gamma.rvs(3.0, scale=0.2, size=5000, random_state=0)
    record = quantile_threshold(scores, 0.9)
    assert record["rule"] == "gamma"
    assert record["value"] == pytest.approx(scipy.stats.gamma.ppf(0.9, 3.0, scale=0.2), rel=0.05)
    assert record["flagged_share"] == pytest.approx(0.1, abs=0.02)
    assert quantile_threshold(scores, 0.5)["value"] < record["value"]


def test_scores_far_from_zero_get_a_threshold_near_their_own_quantile():
    """The ToyTrain case: scores between 0.39 and 0.84, where a free-location gamma fit put the
    0.9 quantile at 1.42 and no clip was ever flagged."""
    scores = 0.39 + scipy.stats.gamma.rvs(0.8, scale=0.05, size=160, random_state=1)
    record = quantile_threshold(scores, 0.9)
    assert 0.04 <= np.mean(scores > record["value"]) <= 0.2
    assert record["value"] < scores.max()


def test_a_gamma_fit_that_disagrees_with_the_scores_falls_back_to_the_empirical_quantile():
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.uniform(1.0, 1.1, 190), rng.uniform(40, 60, 10)])  # 5 % far outliers: not gamma
    record = quantile_threshold(scores, 0.9)
    assert record["rule"] == "empirical" and "inconsistent" in record["fallback_reason"]
    assert record["value"] == pytest.approx(np.quantile(scores, 0.9))


def test_scores_that_are_not_all_positive_use_the_empirical_quantile():
    scores = np.linspace(-3, 3, 101)
    record = quantile_threshold(scores, 0.9)
    assert record["rule"] == "empirical" and record["value"] == pytest.approx(2.4)


def test_threshold_input_checks():
    with pytest.raises(AsdError, match="at least two"):
        quantile_threshold([1.0])
    with pytest.raises(AsdError, match="between 0 and 1"):
        quantile_threshold([1.0, 2.0], 1.5)
    with pytest.raises(AsdError, match="NaN"):
        quantile_threshold([1.0, np.nan])


def test_eq2_threshold_on_the_negative_logit():
    # (1 - 0.04) x mean(0.9, 1.0) = 0.96 x 0.95 = 0.912; score -logit(p) above -logit(0.912) = anomaly
    record = eq2_threshold(np.array([0.9, 1.0]), 0.04)
    assert record["p_threshold"] == pytest.approx(0.912)
    assert record["value"] == pytest.approx(-np.log(0.912 / 0.088))
    with pytest.raises(AsdError, match="alpha"):
        eq2_threshold(np.array([0.5]), 1.5)


def test_score_statistics():
    stats = score_statistics([1.0, 2.0, 3.0])
    assert stats["count"] == 3 and stats["mean"] == 2.0 and stats["std"] == pytest.approx(1.0)
    assert stats["gamma"]["shape"] > 0 and score_statistics([-1.0, 1.0])["gamma"] is None


def test_decide_marks_scores_above_threshold():
    assert decide([0.1, 0.5, 0.9], 0.5).tolist() == [0, 0, 1]


def test_domains_weigh_equally_in_the_threshold():
    """27 source scores near 1 and 3 target scores near 5: unweighted, the 0.9 quantile sits on the
    target clips; weighted, it flags part of both domains' tails."""
    from asdkeras.scoring import balance_groups

    rng = np.random.default_rng(4)
    scores = np.concatenate([rng.normal(1.0, 0.1, 27), rng.normal(5.0, 0.5, 3)])
    domains = ["source"] * 27 + ["target"] * 3
    assert len(balance_groups(scores, domains)) == 54
    record = quantile_threshold(scores, 0.9, groups=domains)
    assert "weighted equally" in record["description"]
    assert set(record["flagged_share_by_group"]) == {"source", "target"}
    assert quantile_threshold(scores, 0.9, groups=["source"] * 30)["value"] == quantile_threshold(scores, 0.9)["value"]


@pytest.mark.parametrize("how", ["mean", "max"])
def test_fused_prediction_threshold_flags_the_intended_share_of_new_normals(how):
    from asdkeras.scoring import fused_prediction_threshold

    rng = np.random.default_rng(8)
    correlation = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])
    held = rng.multivariate_normal(np.zeros(3), correlation, 400)  # many clips: the correlation is measured well
    record = fused_prediction_threshold(held, how, 0.9)
    new = rng.multivariate_normal(np.zeros(3), correlation, 20000)
    fused = new.mean(axis=1) if how == "mean" else new.max(axis=1)
    assert np.mean(fused > record["value"]) == pytest.approx(0.10, abs=0.01)
    assert record["rule"] == "fused-prediction" and np.allclose(record["correlation"]["used"], correlation, atol=0.1)
    # a new normal's fused score, recorded for fusions that standardise this one further (the ensemble)
    assert record["new_normal"]["mean"] == pytest.approx(fused.mean(), abs=0.03)
    assert record["new_normal"]["std"] == pytest.approx(fused.std(), abs=0.03)


def test_a_new_normal_clips_fused_score_has_the_mean_and_spread_of_its_members_fusion():
    from asdkeras.scoring import fused_normal_statistics

    independent = fused_normal_statistics(np.eye(2), "max")  # E max = 1 / sqrt(pi), Var = 1 - 1 / pi
    assert independent == pytest.approx((1 / np.sqrt(np.pi), np.sqrt(1 - 1 / np.pi)), abs=0.01)
    assert fused_normal_statistics(np.ones((2, 2)), "max") == pytest.approx((0.0, 1.0), abs=0.01)  # one score twice
    assert fused_normal_statistics(np.eye(4), "mean") == pytest.approx((0.0, 0.5))


def test_fused_prediction_threshold_floors_negative_correlation_and_sets_no_level_from_few_clips():
    from asdkeras.scoring import fused_prediction_threshold, member_correlation

    rng = np.random.default_rng(3)
    first = rng.normal(size=18)
    parts = np.c_[first, -first + 0.3 * rng.normal(size=18)]  # strongly negative on 18 clips
    measured, used = member_correlation(parts)
    assert measured[0, 1] < -0.9 and used[0, 1] == 0.0
    # a shift of every held-out clip moves the correlation only, not the threshold
    low = fused_prediction_threshold(parts, "mean", 0.9)["value"]
    assert fused_prediction_threshold(parts - 2.0, "mean", 0.9)["value"] == pytest.approx(low)
    assert low == pytest.approx(1.2815515655446004 / np.sqrt(2))  # independent: Phi^-1(0.9) * sqrt(2) / 2
    record = fused_prediction_threshold(parts, "mean", 0.9, groups=["source"] * 16 + ["target"] * 2)
    assert set(record["flagged_share_by_group"]) == {"source", "target"}
    with pytest.raises(AsdError):
        fused_prediction_threshold(parts[:1], "mean")
