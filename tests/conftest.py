import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings

# Deterministic property tests: a fixed example database-free profile, derandomized so CI
# runs the same examples every time.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def default_run_stdout() -> str:
    """What `factory-sim run` prints (the built-in default experiment, 80-90 s of CPU time):
    run once per session, for the tests of the command line and of the README that shows it."""
    proc = subprocess.run([sys.executable, "-m", "factory_sim.cli", "run", "--quiet"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
