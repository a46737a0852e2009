"""Envelope readings: at a point and over a band, step or log-log, and how far one point moves them."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory_sim.fidelity import envelopes as env


@st.composite
def point_sets(draw):
    """A hardware's points: 2-12 (interactivity, tokens/s/GPU) pairs, interactivity 5-300."""
    n = draw(st.integers(2, 12))
    x = draw(st.lists(st.floats(5.0, 300.0), min_size=n, max_size=n, unique=True))
    y = draw(st.lists(st.floats(1.0, 5000.0), min_size=n, max_size=n))
    return np.array(x), np.array(y)


between = st.sampled_from(env.BETWEEN)


@given(point_sets(), st.floats(5.0, 300.0), between, st.floats(0.05, 0.5))
def test_a_band_reading_of_identical_envelopes_is_one(points, target, how, width):
    e = env.frontier_envelope(*points)
    r = env.band_ratio(e, e, target, width, how)
    assert np.isnan(r) == (target > e[0][-1])
    if np.isfinite(r):
        assert r == pytest.approx(1.0)


@given(point_sets(), point_sets(), st.floats(5.0, 300.0), st.floats(0.1, 10.0), between)
def test_scaling_one_side_scales_the_ratio_at_the_point_and_over_the_band(a, b, target, c, how):
    ea, eb = env.frontier_envelope(*a), env.frontier_envelope(*b)
    scaled = (ea[0], ea[1] * c)
    for read in (lambda o, r: env.band_ratio(o, r, target, 0.2, how), lambda o, r: env.point_ratio(o, r, target, how)):
        base, up = read(ea, eb), read(scaled, eb)
        assert np.isnan(base) == np.isnan(up)
        if np.isfinite(base):
            assert up == pytest.approx(c * base, rel=1e-9)
            assert read(eb, scaled) == pytest.approx(1 / (c * base), rel=1e-9)


@given(point_sets(), st.floats(5.0, 300.0))
def test_the_step_reading_never_reads_above_the_interpolated_one(points, target):
    e = env.frontier_envelope(*points)
    step, loglog = (env.envelope_at(*e, [target], between=h)[0] for h in ("step", "loglog"))
    assert np.isnan(step) == np.isnan(loglog)
    if np.isfinite(step):
        assert step <= loglog * (1 + 1e-12)
        # the step is what some point showed at >= the target
        x, y = points
        assert step == max(y[x >= target])


def test_band_reading_is_the_log_mean_over_the_band_exactly():
    # power laws y = A x^-2: log-log interpolation is exact, so the band ratio is A's ratio
    x = np.array([10.0, 40.0, 60.0, 100.0])
    other, ref = (x, 9000.0 * x ** -2.0), (x, 1000.0 * x ** -2.0)
    assert env.band_ratio(other, ref, 50.0) == pytest.approx(9.0)
    # a step: the reference holds 100 up to 55 and 50 beyond (to 70); the other is flat at 400.
    # Over 40..60 (log-uniform) the reference's log mean is (ln(55/40) ln100 + ln(60/55) ln50) / ln(60/40)
    ref = (np.array([55.0, 70.0]), np.array([100.0, 50.0]))
    other = (np.array([80.0]), np.array([400.0]))
    w = np.log(55 / 40) / np.log(60 / 40)
    expected = 400.0 / np.exp(w * np.log(100.0) + (1 - w) * np.log(50.0))
    assert env.band_ratio(other, ref, 50.0, 0.2, "step") == pytest.approx(expected)
    assert env.point_ratio(other, ref, 50.0, "step") == pytest.approx(4.0)


def test_the_band_stops_where_either_envelope_does():
    other = (np.array([10.0, 52.0]), np.array([1000.0, 500.0]))
    ref = (np.array([10.0, 100.0]), np.array([100.0, 10.0]))
    # cut at 52: the band is 40..52, not 40..60
    cut = np.exp(env.log_mean(*other, 40.0, 52.0) - env.log_mean(*ref, 40.0, 52.0))
    assert env.band_ratio(other, ref, 50.0) == pytest.approx(cut)
    assert env.band_top(other, ref, 50.0) == 52.0
    assert np.isnan(env.band_ratio(other, ref, 55.0))  # beyond the other's fastest point: no reading


def test_dropping_the_point_at_an_envelope_edge_shows_the_cell_hangs_on_it():
    # the reference's envelope reaches 75 only through one point at 76; without it, it stops at 72
    ref = (np.array([20.0, 40.0, 72.0, 76.0, 80.0]), np.array([400.0, 300.0, 140.0, 125.0, 60.0]))
    other = (np.array([20.0, 50.0, 74.0, 78.0, 120.0]), np.array([3000.0, 2500.0, 2300.0, 2200.0, 900.0]))
    at = env.point_ratio(env.frontier_envelope(*other), env.frontier_envelope(*ref), 75.0)
    low, high = env.drop_one(other, ref, 75.0, band=False)
    assert low < at < high
    assert high / at - 1 > 0.25  # without 76, the reference is read between 72 and 80: far lower
    assert env.hangs_on_one_point(at, (low, high))
    # a dense, smooth pair of envelopes does not
    x = np.linspace(20.0, 150.0, 40)
    dense_o, dense_r = (x, 1e5 / x), (x, 1e4 / x ** 1.5)
    r = env.band_ratio(env.frontier_envelope(*dense_o), env.frontier_envelope(*dense_r), 75.0)
    dropped = env.drop_one(dense_o, dense_r, 75.0, band=True)
    assert dropped == pytest.approx((r, r), rel=0.02)
    assert not env.hangs_on_one_point(r, dropped)


def test_removing_a_point_below_the_chord_of_its_neighbours_can_raise_an_interpolated_envelope():
    # the other side's point at 70 sits far below the log-log chord from 40 to 100: without it the
    # envelope is read higher, and that is the larger move on that side
    other = (np.array([40.0, 70.0, 100.0, 120.0]), np.array([1000.0, 50.0, 40.0, 30.0]))
    ref = (np.array([20.0, 200.0]), np.array([100.0, 10.0]))
    at = env.point_ratio(env.frontier_envelope(*other), env.frontier_envelope(*ref), 75.0)
    low_or_high, _ = env.drop_one(other, ref, 75.0, band=False)
    assert low_or_high > at * 2


def test_dropping_the_only_point_past_the_target_leaves_it_unreached():
    ref = (np.array([20.0, 80.0]), np.array([100.0, 50.0]))
    other = (np.array([20.0, 60.0]), np.array([1000.0, 500.0]))
    low, high = env.drop_one(other, ref, 50.0, band=False)
    assert np.isnan(low) and np.isnan(high)  # either side without its 60/80 point cannot serve 50
    assert env.hangs_on_one_point(10.0, (low, high))


def test_an_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="between"):
        env.envelope_at(np.array([1.0]), np.array([1.0]), [1.0], between="linear")
