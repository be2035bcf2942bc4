import numpy as np
import pytest
import scipy.stats

from asdkeras.errors import AsdError
from asdkeras.scoring import decide, gamma_threshold


def test_gamma_threshold_recovers_the_quantile_of_gamma_scores():
    scores = scipy.stats.gamma.rvs(3.0, scale=0.2, size=5000, random_state=0)
    expected = scipy.stats.gamma.ppf(0.9, 3.0, scale=0.2)
    assert gamma_threshold(scores, 0.9) == pytest.approx(expected, rel=0.05)
    assert gamma_threshold(scores, 0.5) < gamma_threshold(scores, 0.9)


def test_gamma_threshold_falls_back_to_empirical_quantile_for_degenerate_scores():
    assert gamma_threshold(np.full(10, 0.5)) == pytest.approx(0.5)


def test_gamma_threshold_input_checks():
    with pytest.raises(AsdError, match="at least two"):
        gamma_threshold([1.0])
    with pytest.raises(AsdError, match="between 0 and 1"):
        gamma_threshold([1.0, 2.0], 1.5)


def test_decide_marks_scores_above_threshold():
    assert decide([0.1, 0.5, 0.9], 0.5).tolist() == [0, 0, 1]
