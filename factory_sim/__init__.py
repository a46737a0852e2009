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
    "Experiment": "factory_sim.config.experiment",
    "default_experiment": "factory_sim.studies.assemble",
    "load_experiment": "factory_sim.studies.assemble",
    "parse_experiment": "factory_sim.studies.assemble",
    "cost_at_interactivity": "factory_sim.studies.frontier",
    "crossings": "factory_sim.studies.frontier",
    "frontier": "factory_sim.studies.frontier",
    "PlanSpec": "factory_sim.config.plan",
    "load_plan": "factory_sim.studies.capacity",
    "make_plan": "factory_sim.studies.capacity",
    "RunResult": "factory_sim.studies.run",
    "run_experiment": "factory_sim.studies.run",
    "load_sweep": "factory_sim.studies.sweep",
    "run_sweep": "factory_sim.studies.sweep",
    "load_factory": "factory_sim.studies.factory",
    "run_factory": "factory_sim.studies.factory",
    "show_progress": "factory_sim.progress",
    "load_points": "factory_sim.fidelity.measured",
    "validate_points": "factory_sim.fidelity.measured",
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
