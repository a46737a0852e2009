"""Which model prices a replica's steps: the stack's `step_time_backend` decides.

"roofline" is the project's own StepTimeModel (perf/steptime.py); "aiconfigurator" is NVIDIA's
aiconfigurator-core behind the same interface (perf/aiconfigurator.py), imported only when a
stack asks for it, so the project runs without that optional package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from factory_sim.perf.shape import ReplicaShape
from factory_sim.perf.steptime import StepTimeModel


class StepPricer(Protocol):
    """What the event loop, the router and the estimates ask of a step-time model."""

    shape: ReplicaShape
    windowed: bool  # a window or sparse attention changes the prefill pair count
    decode_chunks_exact: bool  # decode_elapsed_s in pieces (after_s) gives the floats of one call

    def batch_s(self, prefill_tokens: float, prefill_attn_pairs: float, prefill_seqs: float, decode_seqs: float,
                decode_ctx_tokens: float) -> float: ...

    def step_time_s(self, prefill_tokens=0.0, prefill_attn_pairs=0.0, prefill_seqs=0.0, decode_seqs=0.0,
                    decode_ctx_tokens=0.0): ...

    def prefill_pairs(self, chunk_tokens: float, prior_tokens: float) -> float: ...

    def decode_elapsed_s(self, n_seqs: int, ctx_sums, after_s: float = 0.0) -> Sequence[float]: ...

    def decode_token_s(self, n_seqs: float, ctx_sum: float) -> float: ...

    def min_decode_step_s(self, context_tokens: float) -> float: ...


def step_time_model(shape: ReplicaShape) -> StepPricer:
    """The step-time model of a replica shape (StepTimeModel's interface)."""
    if shape.stack.step_time_backend == "aiconfigurator":
        from factory_sim.perf.aiconfigurator import AicStepTimeModel

        return AicStepTimeModel(shape)
    return StepTimeModel(shape)
