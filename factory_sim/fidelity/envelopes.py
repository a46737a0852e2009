"""A ratio of two frontier envelopes read over a band of interactivity, and how far it hangs on one point.

Read at one exact interactivity, a ratio of envelopes swings with whichever point sits at an
envelope's edge: at DeepSeek-R1 1k/1k H200's published tokens/s/GPU falls 37% between points at
75.2 and 80.2 tokens/s/user, so a few per cent of interactivity decide a cell. Two readings
answer that:

- The band reading: the geometric mean of the ratio over interactivities from (1 - width) x
  to (1 + width) x the target, each per cent of interactivity weighing the same (uniform in log
  interactivity). A geometric mean because a ratio is multiplicative (2x and 0.5x average to
  1x), and because it is the ratio of each side's geometric-mean throughput over the band: the
  $/M-token ratio over the band is then the tokens/s/GPU one times the price ratio, exactly as
  at a point (a ratio of areas under the throughput curves would not be the ratio of areas under
  the cost curves). The band is cut at the fastest interactivity both envelopes reach; with
  either side not reaching the target there is no reading.
- The sensitivity: per side, the ratio again with the one envelope point of that side whose
  removal moves it most, by point and by band. Removing a point usually lowers its side's
  envelope; interpolated, it can also raise it (a point below the chord of its neighbours
  holds the envelope down), so the move is taken either way. A cell that moves far hangs on
  one run.

Between its points an envelope is read one way on every side, measured and simulated
(`envelope_at`, `between`): "loglog" (the default) interpolates in log-log, as the frontier
study reads its own frontiers: an operating point between two runs, which a deployment can
reach by running between their concurrencies, though no run stood there; "step" takes the best
point at >= the interactivity: only what a run showed, a lower bound that drops at every point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BETWEEN = ("loglog", "step")


def frontier_envelope(interactivity: np.ndarray, tok_s_per_gpu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Pareto envelope (no point both faster per user and higher per GPU), by interactivity."""
    x, y = np.asarray(interactivity, dtype=float), np.asarray(tok_s_per_gpu, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    order = np.lexsort((-y, -x))  # highest interactivity first, then highest throughput
    keep_x, keep_y, best = [], [], -np.inf
    for i in order:
        if y[i] > best:
            keep_x.append(x[i])
            keep_y.append(y[i])
            best = y[i]
    return np.array(keep_x[::-1]), np.array(keep_y[::-1])


def envelope_at(xs: np.ndarray, ys: np.ndarray, targets: Sequence[float], between: str = "loglog") -> np.ndarray:
    """Tokens/s/GPU of the envelope (xs ascending, from `frontier_envelope`) at each target
    interactivity. "loglog": interpolated in log-log between its points, so between two runs
    it reads a point no run measured; "step": the best point at >= the target (what some run
    showed). Either way a target below the slowest point gets that point's throughput (it
    serves those users faster than they need) and one beyond the fastest point is not reachable
    (NaN)."""
    if between not in BETWEEN:
        raise ValueError(f"between must be one of {BETWEEN}, not {between!r}")
    t = np.asarray(targets, dtype=float)
    if len(xs) == 0:
        return np.full(len(t), np.nan)
    if between == "step":
        i = np.searchsorted(xs, t, side="left")
        out = np.asarray(ys, dtype=float)[np.minimum(i, len(xs) - 1)].copy()
    else:
        out = np.exp(np.interp(np.log(t), np.log(xs), np.log(ys)))
    out[t > xs[-1]] = np.nan
    return out


BAND_WIDTH = 0.2  # +-20% of the target interactivity: a planner's "about 75 tokens/s/user"


def log_mean(xs: np.ndarray, ys: np.ndarray, lo: float, hi: float, between: str = "loglog") -> float:
    """Mean of log(envelope) over log interactivity from lo to hi, exact for either reading
    (log-log interpolation is linear in log-log between points, a step constant between them)."""
    if not len(xs) or not hi >= lo > 0 or hi > xs[-1] * (1 + 1e-12):
        return np.nan
    if hi == lo:
        return float(np.log(envelope_at(xs, ys, [lo], between=between)[0]))
    nodes = np.unique(np.concatenate([[lo, hi], xs[(xs > lo) & (xs < hi)]]))
    u = np.log(nodes)
    if between == "step":
        v = np.log(envelope_at(xs, ys, np.exp((u[:-1] + u[1:]) / 2), between="step"))
        return float(np.sum(v * np.diff(u)) / (u[-1] - u[0]))
    v = np.log(envelope_at(xs, ys, nodes, between=between))
    return float(np.sum((v[:-1] + v[1:]) / 2 * np.diff(u)) / (u[-1] - u[0]))


def band_ratio(other: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray], target: float,
               width: float = BAND_WIDTH, between: str = "loglog") -> float:
    """Geometric mean over the band of other's envelope / reference's (each an (xs, ys) from
    `frontier_envelope`), the band cut at the fastest interactivity both reach; NaN if that is
    below the target."""
    (xo, yo), (xr, yr) = other, reference
    hi = band_top(other, reference, target, width)
    if not np.isfinite(hi):
        return np.nan
    lo = (1 - width) * target
    return float(np.exp(log_mean(xo, yo, lo, hi, between) - log_mean(xr, yr, lo, hi, between)))


def band_top(other: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray], target: float,
             width: float = BAND_WIDTH) -> float:
    """The top of the band `band_ratio` reads over: (1 + width) x target, or lower where either
    envelope stops; NaN where that is below the target (no band reading)."""
    if not len(other[0]) or not len(reference[0]):
        return np.nan
    hi = min((1 + width) * target, other[0][-1], reference[0][-1])
    return float(hi) if hi >= target else np.nan


def point_ratio(other: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray], target: float,
                between: str = "loglog") -> float:
    num = envelope_at(*other, [target], between=between)[0]
    den = envelope_at(*reference, [target], between=between)[0]
    return float(num / den) if np.isfinite(num) and np.isfinite(den) else np.nan


def _bearing(xs: np.ndarray, lo: float, hi: float) -> list[int]:
    """Indices of the envelope points a reading over [lo, hi] depends on: those inside it and
    the nearest either side."""
    left = max(int(np.searchsorted(xs, lo, side="right")) - 1, 0)
    right = min(int(np.searchsorted(xs, hi, side="left")), len(xs) - 1)
    return list(range(left, right + 1))


def _without(points: tuple[np.ndarray, np.ndarray], i: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.delete(points[0], i), np.delete(points[1], i)
    return frontier_envelope(x, y)  # the points it had dominated come back where they lead


def drop_one(other_points: tuple[np.ndarray, np.ndarray], reference_points: tuple[np.ndarray, np.ndarray],
             target: float, *, band: bool, width: float = BAND_WIDTH, between: str = "loglog") -> tuple[float, float]:
    """(ratio with one envelope point of the other side removed, ratio with one of the
    reference's removed): per side, the removal that moves the ratio most (in log, either way),
    NaN where a removal leaves the target unreached (the largest move there is). Points are all
    of a side's points (not only its envelope), so a removed point's runner-up takes over."""
    def read(o, r):
        return (band_ratio(o, r, target, width, between) if band else point_ratio(o, r, target, between))

    env_o, env_r = frontier_envelope(*other_points), frontier_envelope(*reference_points)
    lo, hi = ((1 - width) * target, (1 + width) * target) if band else (target, target)
    out = []
    for side in ("other", "reference"):
        env = env_o if side == "other" else env_r
        if not len(env[0]) or env[0][-1] < target:
            out.append(np.nan)
            continue
        pts = other_points if side == "other" else reference_points
        readings = []
        for i in _bearing(env[0], lo, hi):
            j = np.flatnonzero((pts[0] == env[0][i]) & (pts[1] == env[1][i]))[0]
            rest = _without(pts, j)
            readings.append(read(rest, env_r) if side == "other" else read(env_o, rest))
        base = read(env_o, env_r)
        moves = [abs(np.log(r / base)) if np.isfinite(r) else np.inf for r in readings]
        out.append(readings[int(np.argmax(moves))] if moves else base)
    return out[0], out[1]


def hangs_on_one_point(reading: float, dropped: Sequence[float], tolerance: float = 0.25) -> bool:
    """True when removing one point moves the reading by more than `tolerance` (the issue's 25%)
    or leaves the target unreached."""
    if not np.isfinite(reading):
        return False
    return any(not np.isfinite(d) or abs(d / reading - 1.0) > tolerance for d in dropped)
