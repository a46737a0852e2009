"""Step-by-step reference for one aggregated replica: one loop iteration per forward pass.

Written independently of the SimPy engine, following the scheduling rules stated in
factory_sim/sim/replica.py, so that macro-stepped decode can be checked against it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from factory_sim.perf.memory import plan_memory, replica_kv_bytes, replica_state_bytes
from factory_sim.perf.steptime import StepTimeModel, effective_context, prefill_attention_pairs


def reference_run(shape, arrival_s, input_tokens, output_tokens, max_batch, max_batch_tokens):
    """Return (first_token_s, finish_s) arrays for requests served by one aggregated replica."""
    model = StepTimeModel(shape)
    arrival_s = np.asarray(arrival_s, dtype=float) + shape.request_latency_s  # when the replica sees them
    capacity = plan_memory(shape).kv_capacity_bytes
    n = len(arrival_s)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    need = [float(replica_kv_bytes(shape, int(input_tokens[i] + output_tokens[i]))) + replica_state_bytes(shape)
            for i in range(n)]
    queue: deque[int] = deque()
    prefilling: dict[int, int] = {}
    decoding: list[list[int]] = []  # [rid, tokens left, context]
    reserved = 0.0
    t = 0.0
    nxt = 0
    finished = 0
    while finished < n:
        while nxt < n and arrival_s[nxt] <= t:
            queue.append(nxt)
            nxt += 1
        while queue and len(prefilling) + len(decoding) < max_batch and reserved + need[queue[0]] <= capacity:
            rid = queue.popleft()
            reserved += need[rid]
            prefilling[rid] = 0
        if not prefilling and not decoding:
            t = float(arrival_s[nxt])
            continue
        n_dec = len(decoding)
        budget = max(max_batch_tokens - n_dec, 0)
        chunks = []
        for rid, done in prefilling.items():
            if budget <= 0:
                break
            chunk = min(int(input_tokens[rid]) - done, budget)
            chunks.append((rid, chunk, done))
            budget -= chunk
        ctx = sum(float(effective_context(shape, d[2])) for d in decoding)
        pairs = sum(float(prefill_attention_pairs(shape, c, p)) for _, c, p in chunks)
        dt = float(model.step_time_s(
            prefill_tokens=float(sum(c for _, c, _ in chunks)),
            prefill_attn_pairs=pairs,
            prefill_seqs=float(len(chunks)),
            decode_seqs=float(n_dec),
            decode_ctx_tokens=ctx,
        ))
        t += dt
        still = []
        for d in decoding:
            d[1] -= 1
            d[2] += 1
            if d[1] == 0:
                finish[d[0]] = t
                reserved -= need[d[0]]
                finished += 1
            else:
                still.append(d)
        decoding = still
        for rid, chunk, done in chunks:
            done += chunk
            if done < input_tokens[rid]:
                prefilling[rid] = done
                continue
            del prefilling[rid]
            first[rid] = t
            left = int(output_tokens[rid]) - 1
            if left == 0:
                finish[rid] = t
                reserved -= need[rid]
                finished += 1
            else:
                decoding.append([rid, left, int(input_tokens[rid]) + 1])
    return first, finish
