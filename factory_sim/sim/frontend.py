"""The serving front-end as a queue that new requests share with the streamed tokens.

A serving process's API front-end is one event loop (SGLang's TokenizerManager runs in the
HTTP server's process; trtllm-serve post-processes in its own process unless
`num_postprocess_workers` is set): it takes in every new request (HTTP, chat template,
tokenization, hand-off to the engine) and it also sends every streamed token. Each step of
the engine hands it one batch of tokens, a job of `s_per_token` seconds per token; a new
request that arrives while such a job runs waits for it, and for the jobs queued behind it.
With utilization rho = s_per_token x streamed tokens/s per front-end, and jobs of rho x T
seconds (T: the time between a sequence's tokens), the Pollaczek-Khinchine mean wait of
an M/G/1 queue with deterministic jobs (M/D/1) is

    W = rho x (rho x T) / (2 (1 - rho)) = rho^2 T / (2 (1 - rho))

which is 0 at s_per_token = 0 and grows without bound as rho approaches 1. The stream is
read from the simulation as it runs: the sequences in the streaming replicas' batches and the
time between tokens of the last requests that finished.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

# Requests whose time between tokens makes the estimate of T (the latest ones to finish): a
# window long enough to smooth one request's spread, short enough to follow a change of load.
# An estimate (no engine states it).
WINDOW_REQUESTS = 32
# Utilization at which the wait is capped: at rho >= 1 the front-end would pace the stream
# itself (every token late), which a wait added before the engine cannot represent, so the
# wait stays that of rho = 0.98 (24.5 T). An estimate, the bound of the model's validity.
MAX_UTILIZATION = 0.98


def md1_wait_s(utilization: float, job_s: float) -> float:
    """Mean wait in queue of an M/D/1 queue (Pollaczek-Khinchine): rho x S / (2 (1 - rho))."""
    if utilization <= 0.0:
        return 0.0
    return utilization * job_s / (2.0 * (1.0 - utilization))


def stream_wait_s(s_per_token: float, tokens_per_s: float, token_interval_s: float) -> float:
    """Mean wait of a new request at a front-end that streams `tokens_per_s`, each token costing
    it `s_per_token`, in batches (one per engine step) every `token_interval_s`."""
    rho = min(s_per_token * tokens_per_s, MAX_UTILIZATION)
    return md1_wait_s(rho, rho * token_interval_s)


class FrontendQueue:
    """The wait of a new request at a front-end shared by `frontends` serving processes' worth of
    streams (one per entry replica), from the simulation's state at the request's arrival."""

    __slots__ = ("s_per_token", "frontends", "_streaming", "_intervals", "_interval_sum")

    def __init__(self, s_per_token: float, frontends: int, streaming: Sequence) -> None:
        self.s_per_token = s_per_token
        self.frontends = max(1, frontends)
        self._streaming = streaming  # replicas whose batches stream tokens (aggregated and decode)
        self._intervals: deque[float] = deque()
        self._interval_sum = 0.0

    @classmethod
    def of_fleet(cls, fleet, entry_role: str, frontends: int, streaming: Sequence) -> FrontendQueue | None:
        """The front-end of a fleet's entry pools (the largest cost per token among them), or None
        when none has one: then arrivals go straight to dispatch."""
        s_per_token = max(p.shape.stack.frontend_s_per_streamed_token for p in fleet.pools if p.role == entry_role)
        return cls(s_per_token, frontends, streaming) if s_per_token > 0 else None

    def finished(self, tokens: int, decode_s: float) -> None:
        """A request finished after streaming `tokens` tokens, the first `decode_s` before the last."""
        if tokens < 2 or not decode_s > 0.0:  # NaN (no first token recorded) or a single token
            return
        interval = decode_s / (tokens - 1)
        self._intervals.append(interval)
        self._interval_sum += interval
        if len(self._intervals) > WINDOW_REQUESTS:
            self._interval_sum -= self._intervals.popleft()

    @property
    def token_interval_s(self) -> float:
        """Mean time between a sequence's tokens over the last finished requests (0: none yet)."""
        return self._interval_sum / len(self._intervals) if self._intervals else 0.0

    def wait_s(self) -> float:
        interval = self.token_interval_s
        if interval <= 0.0:
            return 0.0
        sequences = sum(rep.running for rep in self._streaming)
        return stream_wait_s(self.s_per_token, sequences / interval / self.frontends, interval)
