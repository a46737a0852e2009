"""A replica's scheduler: continuous batching with chunked prefill, as a SimPy process.

One class serves the three roles: `prefill` (prompts only, then hand the KV cache off),
`decode` (continuous batching of requests whose KV arrived), and `aggregated` (both on the
same GPUs, prefill chunks riding along with decode steps, the baseline disaggregation is
compared with).

Scheduling rules (the step-by-step reference in the tests implements the same ones):
- At every step boundary the replica admits queued requests in FIFO order while the head
  fits: sequences < max_batch and reserved KV + the head's KV <= capacity. KV is reserved
  for the request's whole context (input + output) on a decode/aggregated replica, and
  for its input on a prefill replica.
- A step decodes one token for every sequence past prefill, and spends what is left of
  the step's token budget (max_batch_tokens) on prompt chunks, oldest admission first.
- A prompt's last chunk yields the first token at the end of that step.
While no prompt is in flight and nothing can be admitted, the batch does not change until
the next request finishes: the replica then prices all those steps in one NumPy call and
waits once (macro-step), waking early only if a request arrives that could be admitted,
in which case it stops at the end of the step in progress and re-plans.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import simpy

from factory_sim.perf.memory import MemoryPlan
from factory_sim.perf.replica import ReplicaShape
from factory_sim.perf.steptime import StepTimeModel, effective_context, prefill_attention_pairs
from factory_sim.trace import Trace

PREFILL, DECODE, AGGREGATED = "prefill", "decode", "aggregated"

# Most future steps priced in one plan; bounds the work thrown away when an admission
# interrupts a plan.
MACRO_HORIZON_STEPS = 512


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        *,
        index: int,
        pool_index: int,
        hardware_index: int,
        role: str,
        shape: ReplicaShape,
        step_model: StepTimeModel,
        memory: MemoryPlan,
        kv_need_bytes: np.ndarray,
        max_batch: int,
        max_batch_tokens: int,
        trace: Trace,
        domains: frozenset[int],
        on_prefill_done: Callable[[Replica, int], None] | None,
        on_finish: Callable[[int], None],
        macro_steps: bool = True,
    ):
        self.env = env
        self.index = index
        self.pool_index = pool_index
        self.hardware_index = hardware_index
        self.role = role
        self.shape = shape
        self.step_model = step_model
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.kv_capacity_bytes = memory.kv_capacity_bytes
        self._kv_need = kv_need_bytes  # per request: KV this replica reserves for it
        self.trace = trace
        self.domains = domains
        self._on_prefill_done = on_prefill_done
        self._on_finish = on_finish
        self._macro = macro_steps
        self._sliding = bool(shape.model.attention_layers_window())

        self.queue: deque[int] = deque()
        self.kv_reserved_bytes = 0.0
        self.outstanding_tokens = 0  # prompt + output tokens still to process; routers read it
        # prompts in flight: request id -> prompt tokens already prefilled
        self._prefilling: dict[int, int] = {}
        # decode batch as parallel arrays (first _n rows live): request id, tokens left to
        # generate, context length; _ctx_total is the sum of the live contexts
        self._ids = np.empty(64, dtype=np.int64)
        self._left = np.empty(64, dtype=np.int64)
        self._ctx = np.empty(64, dtype=np.int64)
        self._n = 0
        self._ctx_total = 0
        self._kv_of: dict[int, float] = {}
        self._wake: simpy.Event | None = None
        self.steps = 0  # forward passes run (for statistics)
        env.process(self._run())

    # -- what the router and engine call --------------------------------------------------
    def kv_need_bytes(self, rid: int) -> float:
        return float(self._kv_need[rid])

    def submit(self, rid: int) -> None:
        """Queue a request (a prompt, or for a decode replica a request whose KV arrived)."""
        tr = self.trace
        if self.role == DECODE:
            self.outstanding_tokens += int(tr.output_tokens[rid]) - 1
        elif self.role == PREFILL:
            self.outstanding_tokens += int(tr.input_tokens[rid])
        else:
            self.outstanding_tokens += int(tr.input_tokens[rid] + tr.output_tokens[rid])
        self.queue.append(rid)
        if self._wake is not None and not self._wake.triggered and self._head_fits():
            self._wake.succeed()

    @property
    def active_sequences(self) -> int:
        return self._n + len(self._prefilling)

    # -- scheduling -------------------------------------------------------------------------
    def _head_fits(self) -> bool:
        if not self.queue or self.active_sequences >= self.max_batch:
            return False
        return self.kv_reserved_bytes + self.kv_need_bytes(self.queue[0]) <= self.kv_capacity_bytes

    def _admit(self) -> None:
        now, tr = self.env.now, self.trace
        while self._head_fits():
            rid = self.queue.popleft()
            need = self.kv_need_bytes(rid)
            self.kv_reserved_bytes += need
            self._kv_of[rid] = need
            if self.role == DECODE:
                tr.decode_start_s[rid] = now
                tr.decode_replica[rid] = self.index
                self._join_decode(rid, generated=1)
            else:
                self._prefilling[rid] = 0

    def _join_decode(self, rid: int, generated: int) -> None:
        tr = self.trace
        left = int(tr.output_tokens[rid]) - generated
        if left <= 0:
            self._finish(rid, self.env.now)
            return
        n = self._n
        if n == len(self._ids):
            self._ids, self._left, self._ctx = (np.resize(a, 2 * n) for a in (self._ids, self._left, self._ctx))
        ctx = int(tr.input_tokens[rid]) + generated
        self._ids[n], self._left[n], self._ctx[n] = rid, left, ctx
        self._ctx_total += ctx
        self._n = n + 1

    def _release(self, rid: int) -> None:
        self.kv_reserved_bytes -= self._kv_of.pop(rid)
        if not self._kv_of:
            self.kv_reserved_bytes = 0.0  # no drift from float sums

    def _finish(self, rid: int, t: float) -> None:
        self._release(rid)
        self.trace.finish_s[rid] = t
        self._on_finish(rid)

    def _decode_ctx_sums(self, steps: int) -> np.ndarray:
        """Layer-averaged context sums of the decode batch for each of the next `steps` steps."""
        n = self._n
        if not self._sliding:
            return self._ctx_total + n * np.arange(steps, dtype=float)
        ctx = self._ctx[:n].astype(float)
        return effective_context(self.shape, ctx[None, :] + np.arange(steps)[:, None]).sum(axis=1)

    def _run(self):
        env = self.env
        while True:
            self._admit()
            if self._prefilling:
                yield from self._mixed_step()
            elif self._n:
                yield from self._decode_steps()
            else:
                self._wake = env.event()
                yield self._wake
                self._wake = None

    def _mixed_step(self):
        """One step: decode every sequence past prefill, fill the rest of the budget with prompt chunks."""
        env, tr = self.env, self.trace
        start = env.now
        n_dec = self._n
        budget = max(self.max_batch_tokens - n_dec, 0)
        chunks: list[tuple[int, int, int]] = []  # (rid, chunk, prior)
        for rid, done in self._prefilling.items():
            if budget <= 0:
                break
            chunk = min(int(tr.input_tokens[rid]) - done, budget)
            chunks.append((rid, chunk, done))
            budget -= chunk
            if done == 0:
                tr.prefill_start_s[rid] = start
        if chunks:
            c = np.array([x[1] for x in chunks], dtype=float)
            p = np.array([x[2] for x in chunks], dtype=float)
            p_tokens, pairs = float(c.sum()), float(prefill_attention_pairs(self.shape, c, p).sum())
        else:
            p_tokens = pairs = 0.0
        dt = self.step_model.step_time_s(
            prefill_tokens=p_tokens,
            prefill_attn_pairs=pairs,
            prefill_seqs=float(len(chunks)),
            decode_seqs=float(n_dec),
            decode_ctx_tokens=float(self._decode_ctx_sums(1)[0]) if n_dec else 0.0,
        )
        yield env.timeout(dt)
        end = start + dt
        self.steps += 1
        self.outstanding_tokens -= int(p_tokens) + n_dec
        if n_dec:
            self._advance_decode(1, end)
        for rid, chunk, done in chunks:
            done += chunk
            if done < tr.input_tokens[rid]:
                self._prefilling[rid] = done
                continue
            del self._prefilling[rid]
            tr.prefill_end_s[rid] = end
            tr.first_token_s[rid] = end
            if self.role == PREFILL:
                self._release(rid)
                self._on_prefill_done(self, rid)
            else:
                tr.decode_start_s[rid] = end
                tr.decode_replica[rid] = self.index
                self._join_decode(rid, generated=1)

    def _decode_steps(self):
        """Pure decode until the next finish: priced at once, interrupted only by an admission."""
        env = self.env
        start = env.now
        n = self._n
        horizon = min(int(self._left[:n].min()), MACRO_HORIZON_STEPS) if self._macro else 1
        if horizon > 1 and self._head_fits():
            horizon = 1  # an admissible request is already waiting: stop after this step
        cum = np.cumsum(self.step_model.decode_steps_s(n, self._decode_ctx_sums(horizon)))
        if horizon > 1:
            self._wake = env.event()
            yield env.timeout(float(cum[-1])) | self._wake
            self._wake = None
            steps = min(int(np.searchsorted(cum, env.now - start, side="left")) + 1, horizon)
        else:
            steps = 1
        end = start + float(cum[steps - 1])
        if end > env.now:
            yield env.timeout(end - env.now)
        self.steps += steps
        self.outstanding_tokens -= n * steps
        self._advance_decode(steps, end)

    def _advance_decode(self, steps: int, t: float) -> None:
        n = self._n
        left, ctx = self._left[:n], self._ctx[:n]
        left -= steps
        ctx += steps
        self._ctx_total += n * steps
        done = left <= 0
        if not done.any():
            return
        finished = self._ids[:n][done]
        self._ctx_total -= int(ctx[done].sum())
        keep = ~done
        m = int(keep.sum())
        for a in (self._ids, self._left, self._ctx):
            a[:m] = a[:n][keep]
        self._n = m
        for rid in finished.tolist():
            self._finish(rid, t)
