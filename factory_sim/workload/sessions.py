"""Multi-turn and agentic sessions: conversations whose prompts grow turn by turn.

A session is a user (or an agent) talking to the model several times in a row. Every turn
resends the whole conversation so far (a shared system prompt, all earlier prompts and
answers) plus some new tokens, so most of each prompt is a prefix the fleet has already
computed. Whether that prefix's KV cache is still held, and where, decides what a turn
costs; the requests therefore carry the hashes of their prompt's KV blocks.

Only the first turn of a session has a fixed arrival time. Turn k+1 arrives a think (or
tool-call) time after turn k finishes, which the simulation engine decides; this module
draws the think times, not the arrivals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from factory_sim.config.workload import HASH_STRIDE, LengthDist, SessionArrivals
from factory_sim.workload.lengths import mean_length, sample_lengths

# Sessions drawn per round. Fixed, so that asking for more requests draws the same
# sessions first: a longer run starts with the shorter run's sessions.
_SESSIONS_PER_ROUND = 1024


def session_requests(
    arr: SessionArrivals,
    input_dist: LengthDist,
    output_dist: LengthDist,
    n: int,
    rngs: tuple[np.random.Generator, ...],
    rate_per_s: float | None = None,
) -> dict[str, Any]:
    """The first `n` turns of a stream of sessions, as RequestBatch fields.

    `rngs` are five independent generators: session starts, new input tokens, output
    tokens, turns per session, think times. `rate_per_s` (requests per second) replaces
    the configured session rate by rate_per_s / mean turns per session, so that the
    workload's mean request rate is about rate_per_s; only the start times change.
    Requests come session by session (in start order), turn by turn.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if rate_per_s is not None and not (np.isfinite(rate_per_s) and rate_per_s > 0):
        raise ValueError(f"rate_per_s must be a finite number > 0, got {rate_per_s}")
    start_rng, input_rng, output_rng, turns_rng, think_rng = rngs
    rounds: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    have = 0
    sessions_before = 0
    while have < n:
        session, inputs, outputs, think = _draw_round(arr, input_dist, output_dist, turns_rng, input_rng,
                                                      output_rng, think_rng)
        rounds.append((session + sessions_before, inputs, outputs, think))
        sessions_before += _SESSIONS_PER_ROUND
        have += inputs.size
    if rounds:
        session = np.concatenate([r[0] for r in rounds])[:n]
        inputs = np.concatenate([r[1] for r in rounds])[:n]
        outputs = np.concatenate([r[2] for r in rounds])[:n]
        think_s = np.concatenate([r[3] for r in rounds])[:n]
    else:
        session = np.zeros(0, dtype=np.int64)
        inputs = np.zeros(0, dtype=np.int64)
        outputs = np.zeros(0, dtype=np.int64)
        think_s = np.zeros(0, dtype=np.float64)
    # Every session keeps its first turn, so session ids run 0..S-1 without gaps.
    first = np.ones(n, dtype=bool)
    first[1:] = session[1:] != session[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = session[1:] != session[:-1]
    next_turn = np.where(last, -1, np.arange(1, n + 1, dtype=np.int64))
    think_s[first] = 0.0

    sessions = int(session[-1]) + 1 if n else 0
    session_rate_per_s = arr.rate_per_s if rate_per_s is None else rate_per_s / mean_turns(arr)
    unit_gaps = np.maximum(start_rng.standard_exponential(sessions), np.finfo(np.float64).tiny)
    starts_s = np.cumsum(unit_gaps) / session_rate_per_s
    arrival_s = np.full(n, np.nan)
    arrival_s[first] = starts_s
    return {
        "arrival_s": arrival_s,
        "input_tokens": inputs,
        "output_tokens": outputs,
        "block_hashes": _block_hashes(inputs, session, arr.system_prompt_tokens, arr.block_tokens),
        "block_tokens": arr.block_tokens,
        "next_turn": next_turn,
        "think_s": think_s,
        "session": session,
    }


def _draw_round(
    arr: SessionArrivals,
    input_dist: LengthDist,
    output_dist: LengthDist,
    turns_rng: np.random.Generator,
    input_rng: np.random.Generator,
    output_rng: np.random.Generator,
    think_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One round of sessions: (session index in the round, input, output, think) per kept turn."""
    turns = sample_lengths(arr.turns, _SESSIONS_PER_ROUND, turns_rng)
    total = int(turns.sum())
    new_tokens = sample_lengths(input_dist, total, input_rng)
    outputs = sample_lengths(output_dist, total, output_rng)
    if arr.think_distribution == "exponential":
        think_s = think_rng.standard_exponential(total) * arr.think_time_s
    else:
        think_s = np.full(total, arr.think_time_s)
    session = np.repeat(np.arange(_SESSIONS_PER_ROUND, dtype=np.int64), turns)
    first_index = np.cumsum(turns) - turns
    # Each turn adds its new tokens and the previous turn's answer; a first turn adds the
    # system prompt instead. A running sum restarted at each session gives the prompts.
    added = new_tokens.copy()
    added[1:] += outputs[:-1]
    added[first_index] = new_tokens[first_index] + arr.system_prompt_tokens
    running = np.cumsum(added)
    inputs = running - np.repeat(running[first_index] - added[first_index], turns)
    # Prompts grow within a session, so "fits the context" keeps a prefix of each session.
    # A first turn that alone is too long is cut to the context (a client truncates it).
    keep = inputs <= arr.max_context_tokens
    keep[first_index] = True
    inputs[first_index] = np.minimum(inputs[first_index], arr.max_context_tokens)
    return session[keep], inputs[keep], outputs[keep], think_s[keep]


def _block_hashes(
    inputs: np.ndarray, session: np.ndarray, system_prompt_tokens: int, block_tokens: int
) -> list[tuple[int, ...]]:
    """Hashes of each prompt's KV blocks 0..ceil(input/B)-1, in order.

    A block wholly inside the shared system prompt hashes to -(k+1), the same in every
    session; any other block to session * HASH_STRIDE + k + 1, the same in every turn of
    its session. A prompt's last block may be partly filled: its hash is the one the full
    block gets in the next turn, so a cache should reuse only a request's full blocks.
    """
    system_blocks = system_prompt_tokens // block_tokens
    system = tuple(range(-1, -system_blocks - 1, -1))
    blocks = -(-inputs // block_tokens)
    out: list[tuple[int, ...]] = []
    for s, b in zip(session.tolist(), blocks.tolist(), strict=True):
        shared = min(system_blocks, b)
        base = s * HASH_STRIDE + 1
        out.append(system[:shared] + tuple(range(base + shared, base + b)))
    return out


def mean_turns(arr: SessionArrivals) -> float:
    """Expected turns per session, ignoring sessions cut short by max_context_tokens."""
    return mean_length(arr.turns)
