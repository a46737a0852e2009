"""factory-sim: a discrete-event simulator of AI inference factories.

    import factory_sim as fs
    exp = fs.default_experiment()          # or fs.load_experiment("my.yaml")
    result = fs.run_experiment(exp)
    result.summary                         # pandas DataFrame, one row per fleet x SLO tier

The same API drives the command line: `frontier` / `cost_at_interactivity` / `crossings`
(cost curves), `load_plan` / `make_plan` (capacity plans), `load_sweep` / `run_sweep`
(what-if sweeps), `validate_points` (error against measured deployments). Names are
imported on first use, so `import factory_sim` stays cheap.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "factory_sim.errors",
    "Experiment": "factory_sim.experiment",
    "default_experiment": "factory_sim.experiment",
    "load_experiment": "factory_sim.experiment",
    "parse_experiment": "factory_sim.experiment",
    "cost_at_interactivity": "factory_sim.frontier",
    "crossings": "factory_sim.frontier",
    "frontier": "factory_sim.frontier",
    "PlanSpec": "factory_sim.plan",
    "load_plan": "factory_sim.plan",
    "make_plan": "factory_sim.plan",
    "RunResult": "factory_sim.run",
    "run_experiment": "factory_sim.run",
    "load_sweep": "factory_sim.sweep",
    "run_sweep": "factory_sim.sweep",
    "load_factory": "factory_sim.studies.factory",
    "run_factory": "factory_sim.studies.factory",
    "load_points": "factory_sim.validate",
    "validate_points": "factory_sim.validate",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'factory_sim' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
