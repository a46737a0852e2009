"""MTP acceptance that differs from request to request, as a Beta distribution.

A decode pass's time does not depend on how many drafts are accepted (every sequence verifies
its k + 1 positions), but the tokens a pass yields do, and on real text the acceptance is a
property of the request (its topic, its language, code or prose) more than of the step. The
simulator prices a decode step as the pass's time over the tokens a pass yields on average
(perf/steptime.py), so a request that accepts more than the average needs fewer of those steps
per token, and one that accepts less needs more: a request with tokens per pass t_i runs
`t_mean / t_i` steps per output token (`steps_per_token`).

Each request draws its acceptance from a Beta distribution with the standard deviation given
(`acceptance_sd`). The Beta's mean is chosen so that the tokens all requests yield over the
passes they take are the stack's tokens per pass (E[1 / t_i] = 1 / t_mean): engines report the
acceptance as accepted tokens over verify passes summed over requests, the figure the stack's
acceptance was fitted to, so a spread widens the per-request TPOT without moving that ratio.
An approximation: in the batch a request's context grows one token a step, so a request that
accepts more than the average is priced with a shorter context than it has (and one that
accepts less with a longer one) by the same factor; its KV reservation is its real context.
Pure NumPy/SciPy: no SimPy.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

from factory_sim.errors import ConfigError


def tokens_per_pass(acceptance, drafts: int):
    """1 + a + ... + a^k: tokens a pass yields with k drafts each accepted at `a` given the one before."""
    a = np.asarray(acceptance, dtype=float)
    return sum(a ** j for j in range(drafts + 1))


def max_sd(acceptance: float) -> float:
    """The largest standard deviation a distribution on [0, 1] with this mean can have."""
    return math.sqrt(acceptance * (1.0 - acceptance))


def _beta(mean: float, sd: float) -> tuple[float, float]:
    nu = mean * (1.0 - mean) / sd ** 2 - 1.0
    return mean * nu, (1.0 - mean) * nu


# Quantile midpoints an expectation over the Beta is taken at: deterministic, and unlike
# adaptive quadrature untroubled by the density's singularity at 0 or 1 of a wide spread
_GRID = (np.arange(1024) + 0.5) / 1024


def _passes_per_token(mean: float, sd: float, drafts: int) -> float:
    """E[1 / t(a)] for a ~ Beta(mean, sd)."""
    alpha, beta = _beta(mean, sd)
    return float(np.mean(1.0 / tokens_per_pass(stats.beta.ppf(_GRID, alpha, beta), drafts)))


@lru_cache(maxsize=64)
def beta_parameters(acceptance: float, drafts: int, sd: float, path: str = "mtp") -> tuple[float, float]:
    """(alpha, beta) of the per-request acceptance: standard deviation `sd`, and the mean at which
    the expected passes per token are those of every request accepting at `acceptance`."""
    if drafts < 1:
        raise ConfigError(f"{path}.acceptance_sd", "a spread of acceptance needs MTP drafts (draft_tokens >= 1)")
    if not 0.0 < sd:
        raise ConfigError(f"{path}.acceptance_sd", f"must be above 0, got {sd}")
    target = 1.0 / float(tokens_per_pass(acceptance, drafts))

    def excess(mean: float) -> float:
        return _passes_per_token(mean, sd, drafts) - target

    # the Beta needs sd^2 < mean (1 - mean); a spread lowers the passes per token's mean less
    # than it raises it (1 / t is convex), so the mean sits a little above `acceptance`
    # (bounds where alpha + beta is 0.001, the widest Beta priced)
    half = math.sqrt(max(0.25 - 1.001 * sd ** 2, 0.0))
    lo, hi = 0.5 - half, 0.5 + half
    if not lo < hi or excess(lo) < 0.0 or excess(hi) > 0.0:
        raise ConfigError(
            f"{path}.acceptance_sd",
            f"{sd} is too wide for an acceptance of {acceptance:.3g} with {drafts} draft(s): no Beta "
            f"distribution on [0, 1] with that spread keeps its tokens per pass; use at most about "
            f"{0.8 * max_sd(acceptance):.2f}",
        )
    mean = optimize.brentq(excess, lo, hi, xtol=1e-7)
    return _beta(mean, sd)


def steps_per_token(acceptance: float, drafts: int, sd: float, quantiles: np.ndarray) -> np.ndarray:
    """Per request, the simulator's decode steps per output token (t_mean / t_i), its acceptance
    the Beta's quantile `quantiles[i]`; their mean tends to 1 as requests are many."""
    alpha, beta = beta_parameters(float(acceptance), int(drafts), float(sd))
    a = stats.beta.ppf(np.asarray(quantiles, dtype=float), alpha, beta)
    return float(tokens_per_pass(acceptance, drafts)) / tokens_per_pass(a, drafts)


def decode_steps(output_tokens: np.ndarray, per_token: np.ndarray) -> np.ndarray:
    """The steps each request spends in the decode batch, as output tokens: the first token (the
    prompt's pass) stays one, the other tokens' count scaled by `per_token` and rounded (at least one)."""
    out = np.asarray(output_tokens, dtype=np.int64)
    rest = np.maximum(np.rint((out - 1) * per_token), 1).astype(np.int64)
    return np.where(out > 1, 1 + rest, out)


def decode_steps_by_pool(shapes: dict[int, object], output_tokens: np.ndarray, seed: int) -> dict[int, list[int]]:
    """Per pool whose MTP acceptance differs by request (its ReplicaShape in `shapes`, by pool
    index), the decode steps each request takes, counted as output tokens: what its replicas
    read in place of the output tokens. A request's acceptance is one quantile of the pools'
    distributions, drawn once per run, so it accepts alike wherever it decodes."""
    quantiles = np.random.default_rng([seed, 11]).random(len(output_tokens))
    return {i: decode_steps(output_tokens, steps_per_token(s.mtp_acceptance, s.mtp_draft_tokens, s.mtp_acceptance_sd,
                                                           quantiles)).tolist()
            for i, s in shapes.items()}
