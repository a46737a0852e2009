"""factory-sim: a discrete-event simulator of AI inference factories.

    import factory_sim as fs
    exp = fs.default_experiment()          # or fs.load_experiment("my.yaml")
    result = fs.run_experiment(exp)
    result.summary                         # pandas DataFrame, one row per fleet x SLO tier
"""

__version__ = "0.1.0"

from factory_sim.errors import ConfigError  # noqa: E402
from factory_sim.experiment import Experiment, default_experiment, load_experiment, parse_experiment  # noqa: E402
from factory_sim.run import RunResult, run_experiment  # noqa: E402

__all__ = [
    "ConfigError",
    "Experiment",
    "RunResult",
    "__version__",
    "default_experiment",
    "load_experiment",
    "parse_experiment",
    "run_experiment",
]
