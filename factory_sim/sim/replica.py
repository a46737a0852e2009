"""A replica's scheduler: continuous batching with chunked prefill, on the SimPy clock.

One class serves the three roles: `prefill` (prompts only, then hand the KV cache off),
`decode` (continuous batching of requests whose KV arrived), and `aggregated` (both on the
same GPUs, prefill chunks riding along with decode steps, the baseline disaggregation is
compared with).

Scheduling rules (the step-by-step reference in the tests implements the same ones):
- At every step boundary the replica admits queued requests in FIFO order while the head
  fits: sequences < max_batch and reserved KV + the head's KV <= capacity. KV is reserved
  for the request's whole context (input + output) on a decode/aggregated replica, and
  for its input on a prefill replica.
- Under on-demand KV (an aggregated replica whose stack sets kv_allocation: on_demand, as
  vLLM allocates), the head needs KV for its prompt only (for a preempted request, its
  prompt and the tokens it had generated), the cache grows by one token per sequence per
  step, and before a step that would not fit, the newest decoding sequences are preempted: their
  KV is freed and they go back to the head of the queue, to be prefilled again (not in the reference).
- A step decodes one token for every sequence past prefill, and spends what is left of
  the step's token budget (max_batch_tokens) on prompt chunks, oldest admission first.
- A prompt's last chunk yields the first token at the end of that step.
- Under a stack with prefill_steps_alone (SGLang's scheduler), a step that carries prompt
  chunks decodes nothing: the decode batch waits for it (not in the reference).
- With attention-DP context balancing (an aggregated replica with attention DP under a stack
  with adp_balance_timeout_steps, as TensorRT-LLM's recipes), queued prompts go only at a release:
  at once while a rank runs nothing or every rank can take one (sim/dp_ranks.py), else every
  `adp_balance_timeout_steps` steps (not in the reference); SGLang's request polling
  (`scheduler_recv_interval_steps`) holds them the same way (_held).
While no prompt is in flight and nothing can be admitted, the batch does not change until
the next request finishes: the replica then plans all those steps and waits once
(macro-step), cut short only if a request arrives that could be admitted, in which case it
stops at the end of the step in progress and re-plans. A long plan's steps are priced in
chunks as the clock reaches them (sim/decode_plan.py), its end keeping its place in SimPy's
order, so that a cut does not throw away steps priced for nothing.

The replica is a state machine on SimPy timeouts rather than a generator process: the end
of a step (or of a macro-step) is one timeout whose callback finishes it and starts the
next, and a cut macro-step is a new timeout at the end of the step in progress, the old one
left with no callback (the loop pops it and calls nothing). Nothing here costs more than a
few Python operations per event: each sequence's finishing step is known when it joins, so advancing the batch by
any number of steps is one addition plus a heap pop per step at which sequences finish.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import TYPE_CHECKING

import numpy as np
import simpy
from numpy import ndarray  # (read per plan: NumPy's module __getattr__ keeps CPython 3.11 from caching `np.ndarray`)
from simpy.events import NORMAL

from factory_sim.config.experiment import AGGREGATED, DECODE, PREFILL
from factory_sim.perf.memory import MemoryBudget
from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.step_backends import StepPricer
from factory_sim.perf.steptime import attention_is_capped, effective_context
from factory_sim.sim.capped_context import CappedContextSums
from factory_sim.sim.decode_plan import FIRST_CHUNK_STEPS, DecodePlan
from factory_sim.sim.dp_ranks import DpRanks, NoRanks
from factory_sim.sim.live_trace import LiveTrace
from factory_sim.sim.wake import Wake, wake

if TYPE_CHECKING:
    from factory_sim.sim.prefix_cache import PrefixCache

# Most future steps priced in one plan; bounds the work thrown away when an admission
# interrupts a plan.
MACRO_HORIZON_STEPS = 512


class Replica:
    # Every attribute, declared: CPython 3.11 keeps at most 30 attributes in an instance's
    # shared-key values, and beyond that each read and write goes through a dict; declared
    # slots sit at fixed offsets (about 7% of the peer benchmark's event loop).
    __slots__ = (
        "env", "index", "pool_index", "hardware_index", "role", "shape", "step_model", "max_batch",
        "max_batch_tokens", "kv_capacity_bytes", "_kv_need", "_input_tokens", "_output_tokens", "trace", "domains",
        "_on_prefill_done", "_on_finish", "_macro", "_sliding", "_capped", "_lazy_ok", "_dp", "_release_every",
        "_release_anchor", "_recv_polls", "_first_from_decode", "_prefill_alone", "_ranks", "_by_rank", "_on_demand",
        "_kv_token_bytes", "_state_bytes", "_resumed", "queue", "usd_per_hour", "_timeout_s", "_deadlines",
        "_on_timeout", "kv_reserved_bytes", "outstanding_tokens", "load_sinks", "_prefilling", "_step_index",
        "_finishing", "_finish_steps", "_ctx_base", "_ctx_total", "_kv_of", "_idle", "_mixed", "_decoding", "_plan",
        "_priced", "_plain", "_on_mixed_end", "_on_decode_end", "_on_priced_end",
        "_plan_event", "_step_event", "steps", "accepting", "draining", "down", "slowdown",
        "_nominal_kv_capacity_bytes", "prefix_cache", "_block_hashes", "_cache_first", "_on_drained",
    )

    def __init__(
        self,
        env: simpy.Environment,
        *,
        index: int,
        pool_index: int,
        hardware_index: int,
        role: str,
        shape: ReplicaShape,
        step_model: StepPricer,
        memory: MemoryBudget,
        kv_need_bytes: list[float],
        input_tokens: list[int],
        output_tokens: list[int],
        max_batch: int,
        max_batch_tokens: int,
        trace: LiveTrace,
        domains: frozenset[int],
        on_prefill_done: Callable[[Replica, int], None] | None,
        on_finish: Callable[[Replica, int], None],
        on_timeout: Callable[[int], None] | None = None,
        macro_steps: bool = True,
        queue_timeout_s: float | None = None,
        usd_per_hour: float = 0.0,
        prefix_cache: PrefixCache | None = None,
        block_hashes: list[tuple[int, ...]] | None = None,
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
        self._input_tokens = input_tokens
        self._output_tokens = output_tokens
        self.trace = trace
        self.domains = domains
        self._on_prefill_done = on_prefill_done
        self._on_finish = on_finish
        self._macro = macro_steps
        self._sliding = attention_is_capped(shape)  # each sequence's context priced apart
        self._capped = CappedContextSums.for_shape(shape) if self._sliding else None  # ... from integers
        # decode plans priced in chunks (sim/decode_plan.py) where that gives the same floats
        self._lazy_ok = step_model.decode_chunks_exact and (self._capped is not None or not self._sliding)
        # Attention-DP context balancing (stack.adp_balance_timeout_steps): while it holds
        # them, queued prompts wait for a release, which comes every _release_every steps
        # counted from the last one (_release_anchor, a step count).
        self._dp = shape.dp_attention
        self._release_every = shape.stack.adp_balance_timeout_steps if role == AGGREGATED and self._dp > 1 else 0
        self._release_anchor = 0
        # SGLang's request polling (stack.scheduler_recv_interval_steps) holds prompts the same
        # way, with its own rule (_held): a poll every that many decode steps, and after a prefill.
        recv = shape.stack.scheduler_recv_interval_steps if role == AGGREGATED else 0
        self._recv_polls = not self._release_every and recv > 1
        if self._recv_polls:
            self._release_every = recv
        self._first_from_decode = role == DECODE and shape.stack.first_token_from_decode
        # stack.prefill_steps_alone: a step with prompt tokens decodes nothing (the batch waits for it)
        self._prefill_alone = role == AGGREGATED and shape.stack.prefill_steps_alone
        self._ranks = DpRanks(self._dp) if self._release_every and not self._recv_polls else NoRanks()  # (_held)
        self._by_rank = not isinstance(self._ranks, NoRanks)  # else the hot paths skip its no-op calls
        # On-demand KV (stack.kv_allocation): what a sequence holds is its context's tokens
        # times the full-attention bytes per token (an upper bound for sliding-window layers,
        # whose cache stops growing at the window) plus its state; _resumed maps a preempted
        # request, back in the queue or prefilling again, to the output tokens it had generated.
        self._on_demand = role == AGGREGATED and shape.stack.kv_allocation == "on_demand"
        self._kv_token_bytes = memory.kv_bytes_per_token
        self._state_bytes = memory.state_bytes_per_seq
        self._resumed: dict[int, int] = {}

        self.queue: deque[int] = deque()
        self.usd_per_hour = usd_per_hour  # what the replica costs; cost-aware routing reads it
        # requests wait at most queue_timeout_s for admission; the deadlines, in queue order
        self._timeout_s = queue_timeout_s
        self._deadlines: deque[float] = deque()
        self._on_timeout = on_timeout
        self.kv_reserved_bytes = 0.0
        self.outstanding_tokens = 0  # prompt + output tokens still to process; routers read it
        self.load_sinks: tuple[tuple[set[int], int], ...] = ()  # (set, position): told of each change of it
        # prompts in flight: request id -> (prompt tokens already prefilled, prompt tokens)
        self._prefilling: dict[int, tuple[int, int]] = {}
        # The decode batch. _step_index counts the decode steps run so far; a sequence joins
        # with its request id appended to its finishing step's list in _finishing (so each list
        # is in join order), that step on the heap _finish_steps when it is new (one entry per
        # step: integers, cheaper to order than (step, join order, id) tuples), and its context
        # minus _step_index in _ctx_base (in join order); _ctx_total is the sum of the live contexts.
        self._step_index = 0
        self._finishing: dict[int, list[int]] = {}
        self._finish_steps: list[int] = []
        self._ctx_base: dict[int, int] = {}
        self._ctx_total = 0
        self._kv_of: dict[int, float] = {}
        # What is in flight: nothing (idle), a mixed step, or decode steps (a macro-step while
        # _plan_event is set, which an admissible arrival may cut short).
        self._idle = True
        self._mixed: tuple[float, float, list[tuple[int, int, int, int]], int, int] | None = None
        self._decoding: tuple[int, float] | None = None  # (steps, end time) of the decode steps in flight
        self._plan: DecodePlan | None = None  # the macro-step in flight, when priced lazily
        # ... else, when every step of it was priced at once: (start, elapsed seconds per step, horizon)
        # (the plan's number among simultaneous events too, while a lazy plan is not yet a DecodePlan)
        self._priced: tuple[float, Sequence[float], int, int | None] | None = None
        self._plan_event: simpy.Event | None = None
        self._step_event: simpy.Event | None = None  # the pending end of a step; a failure voids it
        self.steps = 0  # forward passes run (for statistics)
        # Faults (sim/faults.py): a replica that is not `accepting` gets no new work from the
        # router; one that is draining finishes what it holds first. `slowdown` stretches every
        # step of a replica running degraded on fewer GPUs.
        self.accepting = True
        self.draining = False
        self.down = False  # failed and not yet restored (an autoscaler's parked replica is not down)
        self.slowdown = 1.0
        self._nominal_kv_capacity_bytes = self.kv_capacity_bytes
        # Prefix cache (prefill and aggregated roles): per request, the hashes of its prompt's
        # blocks; _cache_first holds, for a request admitted with a hit, the host-load seconds
        # its first chunk pays.
        self.prefix_cache = prefix_cache if prefix_cache is not None and prefix_cache.enabled else None
        self._block_hashes = block_hashes
        self._cache_first: dict[int, float] = {}
        # The callbacks of this replica's step events, made once (a Wake's callbacks are read, never
        # changed, so its events share them): one bound method and one list fewer per step.
        self._on_mixed_end = (self._end_mixed_step,)
        self._on_decode_end = (self._end_decode_steps,)
        self._on_priced_end = (self._price_on,)
        # a step boundary need only admit: no on-demand KV, no held prompts, no prefix cache to trim
        self._plain = not self._on_demand and not self._release_every and self.prefix_cache is None

    # -- what the router and engine call --------------------------------------------------
    def kv_need_bytes(self, rid: int) -> float:
        return self._kv_need[rid]

    def prompt_tokens(self, rid: int) -> int:
        return self._input_tokens[rid]

    def submit(self, rid: int) -> None:
        """Queue a request (a prompt, or for a decode replica a request whose KV arrived)."""
        role = self.role
        if role == AGGREGATED:
            self.outstanding_tokens += self._input_tokens[rid] + self._output_tokens[rid]
        elif role == DECODE:
            self.outstanding_tokens += self._output_tokens[rid] - 1
        else:
            self.outstanding_tokens += self._input_tokens[rid]
        for sink, pos in self.load_sinks:
            sink.add(pos)
        self.queue.append(rid)
        if self._by_rank:
            self._ranks.queued(rid)
        if self._timeout_s is not None:
            self._deadlines.append(self.env._now + self._timeout_s)
            self._expire()
        if self._idle:
            if self._head_fits():
                # start at this instant, but after every request submitted at it has queued
                self._idle = False
                self._step_event = wake(self.env, 0.0, self._boundary)
        elif self._plan_event is not None and self._head_fits():
            self._cut_plan()
        # (a held prompt cuts the plan at the next release instead: see _cut_plan)

    def _load_changed(self) -> None:
        """outstanding_tokens changed: tell the load orders that rank this replica (sim/load_order.py)."""
        for sink, pos in self.load_sinks:
            sink.add(pos)

    # -- scheduling -------------------------------------------------------------------------
    def _head_fits(self) -> bool:
        if not self.queue or len(self._ctx_base) + len(self._prefilling) >= self.max_batch:
            return False
        need = self._admit_need(self.queue[0]) if self._on_demand else self._kv_need[self.queue[0]]
        return self.kv_reserved_bytes + need <= self.kv_capacity_bytes

    def _admit_need(self, rid: int) -> float:
        """KV a queued request needs free to be admitted: its whole context, or under on-demand
        KV the tokens it will prefill (its prompt, plus what it had generated if preempted)."""
        if not self._on_demand:
            return self._kv_need[rid]
        return self._kv_token_bytes * (self._input_tokens[rid] + self._resumed.get(rid, 0)) + self._state_bytes

    def _held(self, step: int) -> bool:
        """Whether attention-DP balancing holds the queued prompts at the boundary after `step` steps.

        As TensorRT-LLM (pyexecutor `_balance_adp_requests`, batching_wait_iters 0): at once while
        a rank runs nothing or every rank has a prompt (sim/dp_ranks.py) and dp slots are free,
        else when the steps since the last release reach the timeout (the count restarts)."""
        running = len(self._ctx_base) + len(self._prefilling)
        if self._recv_polls:  # SGLang polls at once while it runs nothing
            return running > 0 and (step - self._release_anchor) % self._release_every != 0
        ranks = self._ranks
        if ranks.some_rank_idle() or (ranks.every_rank_queued() and self.max_batch - running >= self._dp):
            return False
        return (step - self._release_anchor) % self._release_every != 0

    def _next_release(self, step: int) -> int:
        """The first step count >= `step` at which the timeout releases held prompts."""
        return step + (self._release_anchor - step) % self._release_every

    def _boundary(self, event: simpy.Event | None = None) -> None:
        """A step boundary: admit what fits, then start the next step, or go idle."""
        if event is not None and event is not self._step_event:
            return  # scheduled before a failure wiped the replica
        if self._plain:
            if self.queue:
                self._admit()
        elif self._on_demand and self._make_room() and (self._prefilling or self._ctx_base):
            pass  # as vLLM: no request is admitted at a step that had to preempt one
        elif self._release_every and self.queue and self._held(self.steps):
            if self._timeout_s is not None:
                self._expire()
        elif self.queue or self.prefix_cache is not None:  # else nothing to admit (nor expire) or trim
            self._admit()
        if self._prefilling:
            self._start_mixed_step()
        elif self._ctx_base:
            self._start_decode_steps()
        else:
            self._go_idle()

    def _go_idle(self) -> None:
        self._idle = True
        if self.draining and not self.queue:
            self._drained()

    def _expire(self) -> None:
        """Drop queued requests whose admission deadline has passed (checked whenever the queue is read).

        Preempted requests wait at the head with no deadline (they were admitted once); the
        requests behind them still time out."""
        now = self.env.now
        deadlines, queue = self._deadlines, self.queue
        first = 0
        while first < len(deadlines) and deadlines[first] == math.inf:
            first += 1
        while first < len(deadlines) and deadlines[first] < now:
            rid = queue[first]
            del queue[first], deadlines[first]
            self.outstanding_tokens -= self._input_tokens[rid] + (self.role != PREFILL) * self._output_tokens[rid]
            self._ranks.gone(rid, was_queued=True)
            self._load_changed()
            self._on_timeout(rid)

    def _admit(self) -> None:
        if self._timeout_s is not None:
            self._expire()
        queue, ctx_base, prefilling, kv_of = self.queue, self._ctx_base, self._prefilling, self._kv_of
        if self._plain and self.role != DECODE:  # every admission starts a prompt: the loop below, less its branches
            deadlines, kv_need, inputs, max_batch = self._deadlines, self._kv_need, self._input_tokens, self.max_batch
            reserved, capacity = self.kv_reserved_bytes, self.kv_capacity_bytes
            free = max_batch - len(ctx_base) - len(prefilling)  # each admission takes one (a new prompt)
            while queue and free > 0:
                rid = queue[0]
                need = kv_need[rid]
                if not reserved + need <= capacity:
                    break
                if deadlines:
                    deadlines.popleft()
                queue.popleft()
                reserved += need
                kv_of[rid] = need
                prefilling[rid] = (0, inputs[rid])
                free -= 1
            self.kv_reserved_bytes = reserved
            return
        if self._plain:  # a decode replica: every admission joins the batch (the loop below, less its branches)
            deadlines, kv_need, max_batch = self._deadlines, self._kv_need, self.max_batch
            tr, now, index, first_too = self.trace, self.env._now, self.index, self._first_from_decode
            while queue and len(ctx_base) + len(prefilling) < max_batch:
                rid = queue[0]
                need = kv_need[rid]
                if not self.kv_reserved_bytes + need <= self.kv_capacity_bytes:
                    break
                if deadlines:
                    deadlines.popleft()
                queue.popleft()
                self.kv_reserved_bytes += need
                kv_of[rid] = need
                tr.decode_start_s[rid] = now
                if first_too:  # the client's stream comes from the decode side
                    tr.first_token_s[rid] = now
                tr.decode_replica[rid] = index
                self._join_decode(rid, 1)
            return
        queued = len(queue)
        need_of = self._admit_need if self._on_demand else self._kv_need.__getitem__
        # an empty on-demand replica always takes the head (see _make_room)
        alone = self._on_demand and not ctx_base and not prefilling
        deadlines, resumed, inputs, max_batch = self._deadlines, self._resumed, self._input_tokens, self.max_batch
        decode, cache = self.role == DECODE, self.prefix_cache
        while queue and len(ctx_base) + len(prefilling) < max_batch:  # _head_fits, inlined
            rid = queue[0]
            need = need_of(rid)
            if not (self.kv_reserved_bytes + need <= self.kv_capacity_bytes or alone):
                break
            alone = False
            if deadlines:
                deadlines.popleft()
            queue.popleft()
            if self._by_rank:
                self._ranks.admitted(rid)
            self.kv_reserved_bytes += need
            kv_of[rid] = need
            if resumed and rid in resumed:  # preempted: prefill its prompt and generated tokens again
                prefilling[rid] = (0, inputs[rid] + resumed[rid])
            elif decode:
                tr, now = self.trace, self.env._now
                tr.decode_start_s[rid] = now
                if self._first_from_decode:  # the client's stream comes from the decode side
                    tr.first_token_s[rid] = now
                tr.decode_replica[rid] = self.index
                self._join_decode(rid, 1)
            elif cache is None:
                prefilling[rid] = (0, inputs[rid])
            else:
                prefilling[rid] = (self._use_cache(rid), inputs[rid])
        if self._release_every and prefilling and len(queue) < queued:
            self._release_anchor = self.steps  # a release restarts the count
        if self.prefix_cache is not None:
            self.prefix_cache.trim(self.kv_capacity_bytes - self.kv_reserved_bytes)

    # -- on-demand KV ----------------------------------------------------------------------
    def _used_bytes(self) -> float:
        """KV the sequences hold now under on-demand allocation (prompts whole once admitted)."""
        held = self._ctx_total + sum(total for _, total in self._prefilling.values())
        return self._kv_token_bytes * held + self._state_bytes * (len(self._ctx_base) + len(self._prefilling))

    def _make_room(self) -> bool:
        """Before admitting, keep room for the next token of every decoding sequence, preempting
        the newest ones as vLLM's scheduler does, and reserve that room so that admission
        does not take it. Whether it preempted."""
        used = self._used_bytes()
        preempted = False
        # (never the last sequence running: the engine admitted its whole context, measured
        # exactly, where the per-token bound overstates sliding-window layers)
        while (self._ctx_base and len(self._ctx_base) + len(self._prefilling) > 1
               and used + self._kv_token_bytes * len(self._ctx_base) > self.kv_capacity_bytes):
            self._preempt(next(reversed(self._ctx_base)))
            used = self._used_bytes()
            preempted = True
        self.kv_reserved_bytes = used + self._kv_token_bytes * len(self._ctx_base)
        return preempted

    def _preempt(self, rid: int) -> None:
        """Free a decoding sequence's KV and put it back at the head of the queue, to be
        prefilled again with the tokens it had generated."""
        ctx = (base := self._ctx_base.pop(rid)) + self._step_index
        self._ctx_total -= ctx
        if self._capped is not None:
            self._capped.leave(base, self._step_index)
        for step, rids in self._finishing.items():
            if rid in rids:
                rids.remove(rid)
                if not rids:
                    del self._finishing[step]
                    self._finish_steps.remove(step)
                    heapq.heapify(self._finish_steps)
                break
        self._kv_of.pop(rid)
        self._resumed[rid] = ctx - self._input_tokens[rid]
        self.queue.appendleft(rid)
        self._ranks.requeued(rid)
        if self._timeout_s is not None:
            self._deadlines.appendleft(math.inf)  # a preempted request is not dropped
        self.outstanding_tokens += ctx
        self._load_changed()

    def _decode_steps_fitting(self) -> int:
        """Decode steps the free KV holds under on-demand allocation (at least one: _make_room)."""
        growth = self._kv_token_bytes * len(self._ctx_base)
        if growth <= 0:
            return MACRO_HORIZON_STEPS
        return max(1, int((self.kv_capacity_bytes - self._used_bytes()) // growth))

    # -- prefix cache ----------------------------------------------------------------------
    def _cacheable_blocks(self, rid: int) -> Sequence[int]:
        """The hashes of the request's whole prompt blocks (a partial last block is not shared)."""
        hashes = self._block_hashes[rid]
        return hashes[: self._input_tokens[rid] // self.prefix_cache.block_tokens]

    def cached_prefix_tokens(self, rid: int) -> int:
        """Prompt tokens of request `rid` this replica's cache would spare (for KV-aware routing)."""
        if self.prefix_cache is None:
            return 0
        return self._spared(rid, *self.prefix_cache.match(self._cacheable_blocks(rid)))

    def _spared(self, rid: int, hbm_blocks: int, host_blocks: int) -> int:
        """Prompt tokens the matched blocks spare: at least one token is always computed."""
        return min((hbm_blocks + host_blocks) * self.prefix_cache.block_tokens, self._input_tokens[rid] - 1)

    def _use_cache(self, rid: int) -> int:
        """Admit with the cached prefix: the prompt tokens prefill can skip."""
        blocks = self._cacheable_blocks(rid)
        hbm, host = self.prefix_cache.match(blocks)
        cached = self._spared(rid, hbm, host)
        self.trace.cached_tokens[rid] = max(cached, 0)
        if cached <= 0:
            return 0
        self._cache_first[rid] = self.prefix_cache.use(blocks, hbm, host)
        self.outstanding_tokens -= cached
        self._load_changed()
        return cached

    def _join_decode(self, rid: int, generated: int) -> None:
        left = self._output_tokens[rid] - generated
        if left <= 0:
            self._finish(rid, self.env.now)
            return
        ctx = self._input_tokens[rid] + generated
        step = self._step_index + left
        rids = self._finishing.get(step)
        if rids is None:
            self._finishing[step] = [rid]
            heappush(self._finish_steps, step)
        else:
            rids.append(rid)
        self._ctx_base[rid] = base = ctx - self._step_index
        self._ctx_total += ctx
        if self._capped is not None:
            self._capped.join(base, self._step_index)

    def _release(self, rid: int) -> None:
        self.kv_reserved_bytes -= self._kv_of.pop(rid)
        if not self._kv_of:
            self.kv_reserved_bytes = 0.0  # no drift from float sums

    def _finish(self, rid: int, t: float) -> None:
        self.kv_reserved_bytes -= self._kv_of.pop(rid)  # _release, inlined: once per request
        if not self._kv_of:
            self.kv_reserved_bytes = 0.0
        self.trace.finish_s[rid] = t
        if self._by_rank:
            self._ranks.gone(rid)
        self._on_finish(self, rid)

    def _decode_ctx_sum(self) -> float:
        """Layer-averaged context sum of the decode batch, for the step about to run."""
        if not self._sliding:
            return float(self._ctx_total)
        if self._capped is not None:
            ctx = self._capped.sum_one(len(self._ctx_base), self._ctx_total, self._step_index)
            if ctx is not None:
                return ctx
        return float(self._decode_ctx_sums(1)[0])

    def _decode_ctx_sums_from(self, first: int, steps: int) -> Sequence[float]:
        """_decode_ctx_sums of `steps` steps from the `first` step ahead (a lazy plan's chunk:
        the batch does not change while a plan runs)."""
        n = len(self._ctx_base)
        if not self._sliding:
            low = self._ctx_total + n * first
            return range(low, low + n * steps, n)
        return self._capped.sums(n, self._ctx_total + n * first, self._step_index + first, steps)

    def _decode_ctx_sums(self, steps: int) -> Sequence[float]:
        """Layer-averaged context sums of the decode batch for each of the next `steps` steps."""
        n = len(self._ctx_base)
        if not self._sliding:
            return range(self._ctx_total, self._ctx_total + n * steps, n)
        sums = self._capped and self._capped.sums(n, self._ctx_total, self._step_index, steps)
        if sums is not None:  # else past the exact range (or no exact weights): each sequence priced apart
            return sums
        ctx = np.fromiter(self._ctx_base.values(), dtype=np.int64, count=n) + self._step_index
        return effective_context(self.shape, ctx.astype(float)[None, :] + np.arange(steps)[:, None]).sum(axis=1)

    # -- a mixed step: decode every sequence past prefill, fill the rest with prompt chunks --
    def _start_mixed_step(self, event: Wake | None = None) -> None:
        """Start a mixed step; its end is `event` (the end of the step before it, which the loop is done
        with: queued again, one object fewer per step) or a new event."""
        tr, start, model = self.trace, self.env._now, self.step_model
        n_dec = len(self._ctx_base)
        budget = self.max_batch_tokens - n_dec
        if self._prefill_alone:
            n_dec = 0  # the decodes wait for this step (and its prompt budget stays as it was)
        chunks: list[tuple[int, int, int, int]] = []  # (rid, chunk, prior, prompt)
        p_tokens, pairs, host_load_s = 0, 0.0, 0.0
        windowed = model.windowed
        for rid, (done, prompt) in self._prefilling.items():
            if budget <= 0:
                break
            chunk = prompt - done
            if chunk > budget:
                chunk = budget
            chunks.append((rid, chunk, done, prompt))
            budget -= chunk
            p_tokens += chunk
            if windowed:
                pairs += model.prefill_pairs(chunk, done)
            else:  # prefill_pairs without a window (_causal_pairs' `full`, the same float operations), inlined
                c = float(chunk)
                pairs += c * done + c * (c + 1.0) / 2.0
            if done == 0:
                if rid not in self._resumed:
                    tr.prefill_start_s[rid] = start
            elif self._cache_first:  # the first chunk after a prefix-cache hit
                load_s = self._cache_first.pop(rid, None)
                if load_s is not None:
                    tr.prefill_start_s[rid] = start
                    host_load_s += load_s
        ctx = 0.0
        if n_dec:
            ctx = float(self._ctx_total) if not self._sliding else self._decode_ctx_sum()
        dt = model.batch_s(p_tokens, pairs, len(chunks), n_dec, ctx)
        if self.slowdown != 1.0:
            dt *= self.slowdown
        if host_load_s:
            dt += host_load_s  # blocks come back from host memory before the step computes on them
        self._mixed = (start, dt, chunks, n_dec, p_tokens)
        # wake(env, dt, self._end_mixed_step), inlined: once per mixed step
        if event is None:
            event = Wake()
        self._step_event = event
        event.callbacks = self._on_mixed_end
        env = self.env
        heappush(env._queue, (start + dt, NORMAL, next(env._eid), event))

    def _end_mixed_step(self, event: simpy.Event) -> None:
        if event is not self._step_event:
            return
        start, dt, chunks, n_dec, p_tokens = self._mixed
        tr = self.trace
        end = start + dt
        self.steps += 1
        self.outstanding_tokens -= p_tokens + n_dec
        for sink, pos in self.load_sinks:
            sink.add(pos)
        if n_dec:
            finish_steps = self._finish_steps
            if self._capped is None and finish_steps and finish_steps[0] > self._step_index + 1:
                # _advance_decode(1, end) when no sequence finishes at this step, inlined
                self._step_index += 1
                self._ctx_total += len(self._ctx_base)
            else:
                self._advance_decode(1, end)
        prefilling = self._prefilling
        plain = self._plain and self.role == AGGREGATED  # a finished prompt only starts decoding here
        for rid, chunk, done, prompt in chunks:
            done += chunk
            if done < prompt:
                prefilling[rid] = (done, prompt)
                continue
            del prefilling[rid]
            if plain:  # the branches below, for a replica without preemption, prefix cache or hand-off
                tr.prefill_end_s[rid] = tr.first_token_s[rid] = tr.decode_start_s[rid] = end
                tr.decode_replica[rid] = self.index
                self._join_decode(rid, 1)
                continue
            if self._resumed and rid in self._resumed:  # recomputed after a preemption: decode on
                self._join_decode(rid, self._resumed.pop(rid))
                continue
            tr.prefill_end_s[rid] = end
            tr.first_token_s[rid] = end
            if self.prefix_cache is not None:
                self.prefix_cache.insert(self._cacheable_blocks(rid))
            if self.role == PREFILL:
                self._release(rid)
                self._on_prefill_done(self, rid)
            else:
                tr.decode_start_s[rid] = end
                tr.decode_replica[rid] = self.index
                self._join_decode(rid, 1)
        if self._plain:  # no prefix cache to trim, no polls: _boundary, inlined (once per step)
            if self.queue:
                self._admit()
            if self._prefilling:
                self._start_mixed_step(event)
            elif self._ctx_base:
                self._start_decode_steps(event)
            else:
                self._go_idle()
            return
        if self.prefix_cache is not None:
            self.prefix_cache.trim(self.kv_capacity_bytes - self.kv_reserved_bytes)
        if self._recv_polls:
            self._release_anchor = self.steps  # a step with prompt tokens: the next boundary polls
        self._boundary()

    # -- pure decode until the next finish: priced at once, cut short only by an admission ----
    def _start_decode_steps(self, event: Wake | None = None) -> None:
        """Start decode steps up to the next finish (see _start_mixed_step for `event`)."""
        start = self.env._now  # (SimPy's `now` property, read without its call)
        if event is None:
            event = Wake()
        n = len(self._ctx_base)
        horizon = 1
        if self._macro:
            horizon = self._finish_steps[0] - self._step_index
            if horizon > MACRO_HORIZON_STEPS:
                horizon = MACRO_HORIZON_STEPS
            if self._on_demand:
                horizon = min(horizon, self._decode_steps_fitting())
            if horizon > 1 and self.queue and self._head_fits():
                if self._release_every and self._held(self.steps):
                    # a held prompt is waiting: stop at the release
                    horizon = min(horizon, self._next_release(self.steps) - self.steps)
                else:
                    horizon = 1  # an admissible request is already waiting: stop after this step
        if horizon > FIRST_CHUNK_STEPS and self._lazy_ok and self.slowdown == 1.0 and (
                self._capped is None or self._capped.exact(n, self._ctx_total, horizon)):
            # priced in chunks as the clock reaches them (sim/decode_plan.py): the first chunk now, and
            # the DecodePlan that prices the rest made only if the clock (or a cut) reaches past it
            env = self.env
            eid = next(env._eid)  # the plan's place among events at one instant (DecodePlan's number)
            if self._sliding:
                first = self._decode_ctx_sums_from(0, FIRST_CHUNK_STEPS)
            else:
                first = range(self._ctx_total, self._ctx_total + n * FIRST_CHUNK_STEPS, n)
            elapsed = self.step_model.decode_elapsed_s(n, first)
            if isinstance(elapsed, ndarray):
                elapsed = elapsed.tolist()
            self._plan = None
            self._priced = (start, elapsed, horizon, eid)
            self._plan_event = self._step_event = event  # DecodePlan.queue(self._price_on), inlined
            event.callbacks = self._on_priced_end
            heappush(env._queue, (start + elapsed[-1], NORMAL, eid, event))
            return
        total = self._ctx_total
        sums = range(total, total + n * horizon, n) if not self._sliding else self._decode_ctx_sums(horizon)
        elapsed = self.step_model.decode_elapsed_s(n, sums)
        if self.slowdown != 1.0:
            elapsed = [float(e) * self.slowdown for e in elapsed]  # (Python floats, as NumPy's would multiply)
        if horizon > 1:  # every step priced: a plan without a DecodePlan object
            if isinstance(elapsed, ndarray):
                elapsed = elapsed.tolist()
            self._plan = None
            self._priced = (start, elapsed, horizon, None)
            self._decoding = (horizon, end := start + elapsed[-1])
            # the plan's end is also the step end in flight: a cut replaces it, voiding this one
            self._plan_event = self._step_event = event
            event.callbacks = self._on_decode_end
            env = self.env
            heappush(env._queue, (end, NORMAL, next(env._eid), event))
        else:
            end = start + float(elapsed[0])
            self._decoding = (1, end)
            self._step_event = event  # wake(env, end - start, self._end_decode_steps), inlined
            event.callbacks = self._on_decode_end
            env = self.env
            heappush(env._queue, (start + (end - start), NORMAL, next(env._eid), event))

    def _price_on(self, event: simpy.Event) -> None:
        """The clock reached the last step priced of a lazy plan: price more of it, and once it
        is whole, queue its end."""
        if event is not self._step_event:
            return  # a cut plan's placeholder, or voided by a failure
        plan = self._plan
        if plan is None:
            plan = self._plan = self._resume_plan()
        plan.price_more()
        if plan.whole:
            self._decoding = (plan.horizon, plan.start_s + plan.elapsed[-1])
            self._plan_event = self._step_event = plan.queue(self._end_decode_steps)
        else:
            self._plan_event = self._step_event = plan.queue(self._price_on)

    def _resume_plan(self) -> DecodePlan:
        """The DecodePlan of a lazy plan so far a tuple (_priced), to price more of it: the batch
        has not changed since it was made, so its sums are the replica's as they stand."""
        start, elapsed, horizon, eid = self._priced
        return DecodePlan(self.env, start, horizon, len(self._ctx_base), self.step_model, self._decode_ctx_sums_from,
                          elapsed, eid)

    def _cut_plan(self) -> None:
        """Stop the macro-step at the end of the step in progress (or, for a held prompt, at
        the release that lets it in, if that comes before the plan's end)."""
        now = self.env._now
        plan = self._plan
        if plan is None:  # no DecodePlan (yet): (start, elapsed, horizon, the plan's number if lazy)
            start, elapsed, horizon, _ = self._priced
            in_progress = bisect_left(elapsed, now - start)
            if in_progress == len(elapsed) < horizon:  # a lazy plan cut past its first chunk
                plan = self._plan = self._resume_plan()
        if plan is not None:
            start, elapsed, horizon = plan.start_s, plan.elapsed, plan.horizon
            in_progress = bisect_left(elapsed, now - start)
            while in_progress == len(elapsed) and in_progress < horizon:  # not priced that far yet
                plan.price_more()
                in_progress = bisect_left(elapsed, now - start)
        steps = in_progress + 1 if in_progress < horizon else horizon  # min(in_progress + 1, horizon), without its call
        held = self._release_every and self._held(self.steps + steps)
        if held:
            steps = self._next_release(self.steps + steps) - self.steps
            if steps >= horizon:
                return  # the plan ends first; its last boundary re-plans up to the release
            if plan is None and len(elapsed) < steps:
                plan = self._plan = self._resume_plan()
            if plan is not None:
                plan.price_to(steps)
        end = start + float(elapsed[steps - 1])
        self._decoding = (steps, end)
        self._step_event.callbacks = ()  # the plan's queued event, now stale: the loop pops it and calls nothing
        # wake(env, end - now if end > now else 0.0, self._end_decode_steps), inlined
        self._step_event = event = Wake()
        event.callbacks = self._on_decode_end
        env = self.env
        heappush(env._queue, (now + (end - now if end > now else 0.0), NORMAL, next(env._eid), event))
        if held:  # still a plan, now of `steps` steps all priced: a later arrival that ends the hold cuts it again
            if plan is None:
                self._priced = (start, elapsed, steps, None)
            else:
                plan.horizon = steps
            self._plan_event = event
        else:
            self._plan_event = None

    def _end_decode_steps(self, event: simpy.Event) -> None:
        if event is not self._step_event:
            return  # a cut plan's stale end, or voided by a failure
        self._plan_event = None
        steps, end = self._decoding
        self.steps += steps
        self.outstanding_tokens -= len(self._ctx_base) * steps
        for sink, pos in self.load_sinks:
            sink.add(pos)
        finish_steps = self._finish_steps
        if self._capped is None and finish_steps and finish_steps[0] > self._step_index + steps:
            # _advance_decode(steps, end) when no sequence finishes (a cut plan), inlined
            self._step_index += steps
            self._ctx_total += len(self._ctx_base) * steps
        else:
            self._advance_decode(steps, end)
        if self._plain:  # _boundary, inlined (once per step)
            if self.queue:
                self._admit()
            if self._prefilling:
                self._start_mixed_step(event)
            elif self._ctx_base:
                self._start_decode_steps(event)
            else:
                self._go_idle()
        else:
            self._boundary()

    def _advance_decode(self, steps: int, t: float) -> None:
        """Every sequence of the decode batch generated `steps` tokens, the last at time t."""
        self._step_index = now_step = self._step_index + steps
        ctx_base, finish_steps = self._ctx_base, self._finish_steps
        self._ctx_total += len(ctx_base) * steps
        capped = self._capped
        if capped is not None and capped.hits and capped.hits[0] <= now_step:
            capped.advance(now_step)  # (a no-op unless a sequence reached the window)
        if not finish_steps or finish_steps[0] > now_step:
            return  # most steps finish no sequence
        # in (finishing step, join order), as one heap of (step, join order, id) would pop them
        finishing = self._finishing
        finished = finishing.pop(heappop(finish_steps))
        while finish_steps and finish_steps[0] <= now_step:
            finished += finishing.pop(heappop(finish_steps))
        total = self._ctx_total
        for rid in finished:
            total -= (base := ctx_base.pop(rid)) + now_step
            if capped is not None:
                capped.leave(base, now_step)
        self._ctx_total = total
        kv_of, finish_s, on_finish = self._kv_of, self.trace.finish_s, self._on_finish
        for rid in finished:  # _finish, inlined: once per request
            self.kv_reserved_bytes -= kv_of.pop(rid)
            if not kv_of:
                self.kv_reserved_bytes = 0.0
            finish_s[rid] = t
            if self._by_rank:
                self._ranks.gone(rid)
            on_finish(self, rid)

    # -- faults (driven by sim/faults.py) ---------------------------------------------------
    def fail(self) -> list[int]:
        """The replica's GPUs are gone: every request it holds is lost, and so is its KV cache.

        Returns the lost requests (queued, prefilling, decoding) in that order, so the engine
        can retry them. Pending step ends are voided; the replica stays out of routing until
        `restore` is called.
        """
        lost = list(self.queue) + list(self._prefilling) + list(self._ctx_base)
        self.queue.clear()
        self._deadlines.clear()
        self._prefilling.clear()
        self._finishing.clear()
        self._finish_steps.clear()
        self._ctx_base.clear()
        if self._capped is not None:
            self._capped.clear()
        self._kv_of.clear()
        self._ctx_total = 0
        self.kv_reserved_bytes = 0.0
        self.outstanding_tokens = 0
        self._load_changed()
        self._idle = True
        self._mixed = self._decoding = self._plan = self._priced = None
        self._plan_event = self._step_event = None
        self.accepting = False
        self.draining = False
        self.down = True
        self._cache_first.clear()
        self._resumed.clear()
        self._ranks.clear()
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        return lost

    def restore(self, capacity_fraction: float = 1.0) -> None:
        """Back in service (empty), at `capacity_fraction` of its GPUs when running degraded."""
        self.set_capacity(capacity_fraction)
        self.accepting = True
        self.draining = False
        self.down = False

    def set_capacity(self, fraction: float) -> None:
        """Run on `fraction` of the GPUs: steps take 1/fraction as long, the KV cache shrinks alike."""
        self.slowdown = 1.0 / fraction
        self.kv_capacity_bytes = self._nominal_kv_capacity_bytes * fraction

    def drain(self, on_drained: Callable[[Replica], None]) -> None:
        """Take no new work, finish what is held, then call `on_drained` (at once if idle)."""
        self.accepting = False
        self.draining = True
        self._on_drained = on_drained
        if self._idle and not self.queue:
            self._drained()

    def cancel_drain(self) -> None:
        self.draining = False
        self.accepting = True

    def _drained(self) -> None:
        self.draining = False
        self._on_drained(self)

    @property
    def running(self) -> int:
        """Sequences in the batch (prefilling or decoding): the occupancy an autoscaler reads."""
        return len(self._prefilling) + len(self._ctx_base)
