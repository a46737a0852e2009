"""The per-request trace: one row per request, columnar NumPy arrays.

The event loop writes it (preallocated, filled in place); the metrics core reads it. It is
the only thing that crosses from the simulation to the numbers, so everything a metric
needs must be here and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a frame is built: a simulation alone never needs it
    import pandas as pd

# Outcome codes (int8 column `outcome`).
PENDING = -1  # never finished: still in flight when the simulation ended
DONE = 0
REJECTED = 1
TIMED_OUT = 2
FAILED = 3  # lost to hardware faults more often than the retries allow
OUTCOME_NAMES = {PENDING: "pending", DONE: "done", REJECTED: "rejected", TIMED_OUT: "timed_out", FAILED: "failed"}

# Why a request was refused (int8 column `reason`); 0 = no reason (not refused).
REASON_NONE = 0
REASON_TOO_LONG_FOR_KV = 1  # input + output tokens exceed one replica's KV capacity
REASON_QUEUE_FULL = 2
REASON_TIMEOUT = 3
REASON_RETRIES_EXHAUSTED = 4  # its replica failed and it was already retried max_retries times
REASON_NO_REPLICA_UP = 5  # every replica that could serve it was down or draining
REASON_SESSION_ABANDONED = 6  # an earlier turn of its session was not served, so the client stopped
REASON_NAMES = {
    REASON_NONE: "",
    REASON_TOO_LONG_FOR_KV: "context exceeds replica KV capacity",
    REASON_QUEUE_FULL: "queue full",
    REASON_TIMEOUT: "timed out in queue",
    REASON_RETRIES_EXHAUSTED: "replica failed, retries exhausted",
    REASON_NO_REPLICA_UP: "no replica up",
    REASON_SESSION_ABANDONED: "session abandoned after an unserved turn",
}

_FLOAT_COLUMNS = (
    "arrival_s",
    "prefill_start_s",
    "prefill_end_s",
    "first_token_s",
    "decode_start_s",
    "finish_s",
    "kv_transfer_s",
)
FLOAT_COLUMNS = _FLOAT_COLUMNS  # (the event loop writes these through memoryviews: sim/live_trace.py)
_INT_COLUMNS = ("input_tokens", "output_tokens", "cached_tokens")
_SMALL_INT_COLUMNS = ("slo_class", "prefill_replica", "decode_replica", "pool", "hardware", "retries")


@dataclass
class Trace:
    """Columnar request trace. Times in seconds of simulated time; NaN where not reached.

    `pool` and `hardware` are codes into `pool_names` and `hardware_names`; replica
    columns are global replica indices (-1 when the request never reached one).
    """

    arrival_s: np.ndarray
    prefill_start_s: np.ndarray
    prefill_end_s: np.ndarray
    first_token_s: np.ndarray
    decode_start_s: np.ndarray
    finish_s: np.ndarray
    kv_transfer_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cached_tokens: np.ndarray
    slo_class: np.ndarray
    prefill_replica: np.ndarray
    decode_replica: np.ndarray
    pool: np.ndarray
    hardware: np.ndarray
    retries: np.ndarray
    outcome: np.ndarray
    reason: np.ndarray
    pool_names: list[str] = field(default_factory=list)
    hardware_names: list[str] = field(default_factory=list)
    slo_class_names: list[str] = field(default_factory=lambda: ["default"])

    @classmethod
    def allocate(cls, n: int) -> Trace:
        floats = {name: np.full(n, np.nan) for name in _FLOAT_COLUMNS}
        ints = {name: np.zeros(n, dtype=np.int64) for name in _INT_COLUMNS}
        small = {name: np.full(n, -1, dtype=np.int32) for name in _SMALL_INT_COLUMNS}
        small["slo_class"][:] = 0
        small["retries"][:] = 0
        return cls(
            **floats,
            **ints,
            **small,
            outcome=np.full(n, PENDING, dtype=np.int8),
            reason=np.zeros(n, dtype=np.int8),
        )

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def done(self) -> np.ndarray:
        return self.outcome == DONE

    def to_frame(self) -> pd.DataFrame:
        """One row per request, with codes turned back into names."""
        import pandas as pd

        df = pd.DataFrame({name: getattr(self, name) for name in _FLOAT_COLUMNS + _INT_COLUMNS})
        df.insert(0, "request_id", np.arange(len(self)))
        df["slo_class"] = _names(self.slo_class, self.slo_class_names)
        df["pool"] = _names(self.pool, self.pool_names)
        df["hardware"] = _names(self.hardware, self.hardware_names)
        df["prefill_replica"] = self.prefill_replica
        df["decode_replica"] = self.decode_replica
        df["retries"] = self.retries
        df["outcome"] = pd.Categorical.from_codes(
            self.outcome.astype(np.int64) + 1, [OUTCOME_NAMES[k] for k in sorted(OUTCOME_NAMES)]
        )
        df["reason"] = [REASON_NAMES[int(r)] for r in self.reason]
        return df


def _names(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    import pandas as pd

    if not names:
        return pd.Categorical(np.where(codes >= 0, codes.astype(str), ""))
    labels = list(names) + [""]
    return pd.Categorical.from_codes(np.where(codes >= 0, codes, len(names)).astype(np.int64), labels)
