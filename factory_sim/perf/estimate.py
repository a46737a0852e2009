"""Fast analytic estimates of a fleet's capacity, from the step-time model alone.

No queues, no simulation: the steady-state throughput each pool reaches with full batches.
Load searches start from it, and a planner can prune candidates with it before simulating.
"""

from __future__ import annotations

from factory_sim.perf.memory import plan_memory
from factory_sim.perf.step_backends import step_time_model
from factory_sim.perf.steptime import effective_context, prefill_attention_pairs


def prefill_tokens_per_s(pool, mean_input_tokens: float) -> float:
    """Prompt tokens/s of a pool running full token-budget steps of whole prompts."""
    st = step_time_model(pool.shape)
    budget = float(pool.max_batch_tokens)
    seqs = max(budget / mean_input_tokens, 1.0)
    pairs = seqs * float(prefill_attention_pairs(pool.shape, mean_input_tokens, 0.0))
    dt = float(st.step_time_s(prefill_tokens=budget, prefill_attn_pairs=pairs, prefill_seqs=seqs))
    return pool.replicas * budget / dt


def decode_tokens_per_s(pool, mean_input_tokens: float, mean_output_tokens: float) -> float:
    """Output tokens/s of a pool decoding its largest batch that fits in KV at the mean context."""
    st = step_time_model(pool.shape)
    mem = plan_memory(pool.shape)
    ctx = mean_input_tokens + mean_output_tokens / 2.0
    fits = mem.sequences_fitting(mean_input_tokens + mean_output_tokens)
    batch = float(max(1, min(pool.max_batch, fits)))
    dt = st.decode_token_s(batch, batch * float(effective_context(pool.shape, ctx)))
    return pool.replicas * batch / dt


def replica_tokens_per_s(shape, role: str, max_batch: int, max_batch_tokens: int,
                         context_tokens: float = 2048.0) -> float:
    """Tokens/s one replica processes when full: prompt tokens for prefill, output tokens otherwise.

    A routing weight, not a prediction: decode is priced at the batch cap (bounded at 256,
    past which TPOT targets rarely hold) and a typical context.
    """
    st = step_time_model(shape)
    if role == "prefill":
        budget = float(max_batch_tokens)
        pairs = float(prefill_attention_pairs(shape, min(budget, context_tokens), 0.0)) * max(budget / context_tokens,
                                                                                              1.0)
        return budget / st.step_time_s(prefill_tokens=budget, prefill_attn_pairs=pairs,
                                       prefill_seqs=max(budget / context_tokens, 1.0))
    batch = float(min(max_batch, 256))
    ctx = batch * float(effective_context(shape, context_tokens))
    return batch / st.decode_token_s(batch, ctx)


def capacity_req_per_s(fleet, mean_input_tokens: float, mean_output_tokens: float) -> float:
    """Requests/s the fleet sustains with full batches (an upper bound for any SLO)."""
    prefill = [p for p in fleet.pools if p.role == "prefill"]
    decode = [p for p in fleet.pools if p.role == "decode"]
    agg = [p for p in fleet.pools if p.role == "aggregated"]
    if prefill:
        p_rate = sum(prefill_tokens_per_s(p, mean_input_tokens) for p in prefill) / mean_input_tokens
        d_rate = sum(decode_tokens_per_s(p, mean_input_tokens, mean_output_tokens) for p in decode)
        return min(p_rate, d_rate / mean_output_tokens)
    # aggregated: the same GPUs spend time on both phases
    total = 0.0
    for p in agg:
        per_req_s = mean_input_tokens / prefill_tokens_per_s(p, mean_input_tokens) + mean_output_tokens / (
            decode_tokens_per_s(p, mean_input_tokens, mean_output_tokens))
        total += 1.0 / per_req_s
    return total
