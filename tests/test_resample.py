"""The numpy resampler against scipy's ``resample_poly``, which it replaces so the edge runtime needs no scipy."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from asdkeras.audio import resample
from asdkeras.resample import resample_poly


@settings(max_examples=60, deadline=None)
@given(samples=st.integers(1, 3000), up=st.integers(1, 50), down=st.integers(1, 50), seed=st.integers(0, 2**16))
def test_equals_scipy_for_any_ratio_and_length(samples, up, down, seed):
    x = np.random.default_rng(seed).standard_normal(samples)
    expected = scipy.signal.resample_poly(x, up, down)
    got = resample_poly(x, up, down)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate_in", [8_000, 22_050, 44_100, 48_000])
def test_a_clip_at_common_rates_converts_as_scipy_converted_it(rate_in):
    """What ``load_clip`` does to a 10 s recording at another rate: float32 out, within float32 rounding."""
    x = np.random.default_rng(rate_in).uniform(-1, 1, 10 * rate_in).astype(np.float32)
    got = resample(x, rate_in, 16_000)
    g = np.gcd(rate_in, 16_000)
    expected = scipy.signal.resample_poly(x, 16_000 // g, rate_in // g)
    assert got.dtype == np.float32 and got.shape == (160_000,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_refuses_a_ratio_that_is_not_positive():
    with pytest.raises(ValueError, match="Received: up=0, down=3"):
        resample_poly(np.zeros(10), 0, 3)
