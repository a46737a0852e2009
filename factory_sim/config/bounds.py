"""The range of every number a YAML file may give, and why it is bounded there.

pydantic's own limits say what was wrong ("should be greater than 0"), not why; and a bare
`float` takes inf, nan, 1e-300 and 1e308, which run and print nonsense. Every numeric field
of the schemas takes one of these annotations instead: a finite number inside a range a real
fleet, model or workload can have, and a message that gives the range and the reason.

Where a range is about the real world it is set far beyond today's largest figure (the
figure and its source are named), so it refuses typos and units mistaken by 1000x, never a
plausible machine. Where it is about the simulator (float resolution, memory per request),
the reason says so.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import ValidatorFunctionWrapHandler, WrapValidator


def _show(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e10:
        return f"{int(x):,}"
    return f"{x:g}"


def within(low: float, high: float, why: str, *, above: bool = False, below: bool = False) -> WrapValidator:
    """Pydantic metadata: a finite number from `low` to `high` (excluding `low` with `above`,
    `high` with `below`); out of range, the message gives the range and `why`. true/false is
    no number here (pydantic would read it as 1 or 0)."""
    span = (f"{'above' if above else 'at least'} {_show(low)} and "
            f"{'below' if below else 'at most'} {_show(high)}")

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not {str(value).lower()}: {span} ({why})")
        value = handler(value)
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, {span} ({why})")
        if value < low or (above and value == low) or value > high or (below and value == high):
            raise ValueError(f"must be {span} ({why})")
        return value

    return WrapValidator(check)


# --- shared ranges ------------------------------------------------------------------------

# Simulated time is float64 seconds: up to 1e8 s (about 3 years) a step of a microsecond is
# still resolved (spacing of float64 at 1e8 is 1.5e-8).
MAX_SIM_S = 1e8
SIM_TIME = "simulated time is resolved to microseconds only up to 1e8 s, about 3 years"
DAY_S = 86400.0

# A run keeps about 110 bytes per request in its trace, plus its requests' lengths and times:
# ten million requests are about 2 GB.
MAX_REQUESTS = 10_000_000
REQUESTS = "requests per run: ten million already hold about 2 GB of trace"

# Request rates: above 1e7/s arrivals come closer than 0.1 microsecond, below 1e-6/s a
# thousand requests span 30 years.
RATE = "requests per second; beyond this range arrival times fall outside the microsecond resolution of simulated time"
Rate = Annotated[float, within(1e-6, 1e7, RATE)]

# Token counts: 2**24 (16.8 million) is 64x the longest context of a catalog model (262,144,
# factory_sim/data/models) and beyond the longest published window (Llama 4 Scout's 10
# million tokens, Meta's Llama 4 announcement, April 2025).
MAX_TOKENS = 2**24
TOKENS = "tokens; 16.8 million is beyond the longest context window published (10 million)"
Tokens = Annotated[int, within(1, MAX_TOKENS, TOKENS)]

SEED = "NumPy's generators take non-negative seeds below 2**63"
Seed = Annotated[int, within(0, 2**63 - 1, SEED)]

Fraction = Annotated[float, within(0.0, 1.0, "a share, from 0 to 1")]
PositiveFraction = Annotated[float, within(0.0, 1.0, "a share, above 0 and at most 1", above=True)]
Efficiency = Annotated[float, within(0.0, 1.0, "a fraction of the hardware's peak", above=True)]

# Parallel degrees and replica counts. The largest scale-up domain announced is NVIDIA's
# Rubin Ultra NVL576 (GTC 2025 keynote); 1024 ranks of one kind are beyond any deployment.
DEGREE = "ranks of one kind of parallelism; 1024 is beyond the largest NVLink domain announced (576 GPUs)"
Degree = Annotated[int, within(1, 1024, DEGREE)]
REPLICAS = "replicas of one pool; each is simulated, and 100,000 of the smallest is beyond any cluster built"
Replicas = Annotated[int, within(1, 100_000, REPLICAS)]
# Largest AI clusters announced are of the order of 10^5 GPUs (xAI Colossus, 200,000 GPUs
# in 2025, https://x.ai/colossus); a million is 5x that.
MAX_FLEET_GPUS = 1_000_000

Seconds = Annotated[float, within(0.0, DAY_S, "seconds; a day is the longest any of these delays is meaningful")]
PositiveSeconds = Annotated[float, within(0.0, DAY_S, "seconds; above 0 and at most a day", above=True)]
SimSeconds = Annotated[float, within(0.0, MAX_SIM_S, SIM_TIME)]

# Software-stack step costs: the slowest engine step measured in the calibration set is well
# under a second; ten seconds of fixed overhead per step is beyond any engine.
StepSeconds = Annotated[float, within(0.0, 10.0, "seconds per step or layer; 10 s is beyond any engine measured")]

# Architecture dimensions: 100x and more the largest in the catalog (factory_sim/data/models:
# hidden 16,384 and 126 layers of Llama-3.1-405B, 512 routed experts, a vocabulary of 248,320).
ARCH = "an architecture dimension; beyond 100x any published model's"
Dim = Annotated[int, within(1, 10_000_000, ARCH)]
Layers = Annotated[int, within(1, 100_000, ARCH)]
LayerCount = Annotated[int, within(0, 100_000, ARCH)]
Experts = Annotated[int, within(1, 1_000_000, ARCH)]
ExpertCount = Annotated[int, within(0, 1_000_000, ARCH)]
Vocab = Annotated[int, within(1, 100_000_000, ARCH)]
Positions = Annotated[int, within(1, 2**40, ARCH)]
ParamsB = Annotated[float, within(0.0, 1_000_000.0, "billions of parameters; beyond 100x any published model's",
                                  above=True)]

# Money. The dearest GPU-hour in hardware_profiles/ is under $4 and its dearest GPU $50,000.
UsdPerGpuHour = Annotated[float, within(0.0, 10_000.0, "$ per GPU-hour; beyond 1000x any published price",
                                        above=True)]
UsdPerGpu = Annotated[float, within(0.0, 1e7, "$ per GPU; beyond 100x any published price", above=True)]

# Sampled-distribution parameters: any finite value a field could take.
Real = Annotated[float, within(-1e15, 1e15, "a finite number")]
