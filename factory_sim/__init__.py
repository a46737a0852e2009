"""factory-sim: a discrete-event simulator of AI inference factories.

    import factory_sim as fs
    exp = fs.default_experiment()          # or fs.load_experiment("my.yaml")
    result = fs.run_experiment(exp)
    result.summary                         # pandas DataFrame, one row per fleet x SLO tier

The same API drives the command line: `frontier` / `cost_at_interactivity` / `crossings`
(cost curves), `load_plan` / `make_plan` (capacity plans), `load_sweep` / `run_sweep`
(what-if sweeps), `validate_points` (error against measured deployments).
"""

__version__ = "0.1.0"

from factory_sim.errors import ConfigError  # noqa: E402
from factory_sim.experiment import Experiment, default_experiment, load_experiment, parse_experiment  # noqa: E402
from factory_sim.frontier import cost_at_interactivity, crossings, frontier  # noqa: E402
from factory_sim.plan import PlanSpec, load_plan, make_plan  # noqa: E402
from factory_sim.run import RunResult, run_experiment  # noqa: E402
from factory_sim.sweep import load_sweep, run_sweep  # noqa: E402
from factory_sim.validate import load_points, validate_points  # noqa: E402

__all__ = [
    "ConfigError",
    "Experiment",
    "PlanSpec",
    "RunResult",
    "__version__",
    "cost_at_interactivity",
    "crossings",
    "default_experiment",
    "frontier",
    "load_experiment",
    "load_plan",
    "load_points",
    "load_sweep",
    "make_plan",
    "parse_experiment",
    "run_experiment",
    "run_sweep",
    "validate_points",
]
