"""sim/clock.run does what simpy.Environment.run does: the same events, order, count and end."""

from __future__ import annotations

import pytest
import simpy

from factory_sim.sim.clock import run


def _world(env: simpy.Environment, log: list):
    """Processes, timeouts at equal times, an urgent and a failed-but-defused event."""

    def worker(name, delays):
        for d in delays:
            yield env.timeout(d)
            log.append((env.now, name))

    env.process(worker("a", [1.0, 1.0, 0.5]))
    env.process(worker("b", [2.0, 0.5, 0.0]))
    for t in (0.5, 2.0, 2.5, 9.0):
        env.timeout(t).callbacks.append(lambda ev, t=t: log.append((env.now, f"t{t}")))
    bad = env.event()
    bad.fail(ValueError("defused"))
    bad.defused = True
    done = env.event()
    env.timeout(2.5).callbacks.append(lambda _ev: done.succeed("finished"))
    return done


@pytest.mark.parametrize("until", [None, 2.5, 3.0, "event"])
def test_run_matches_simpy(until):
    results = []
    for runner in (lambda env, u: env.run(until=u), run):
        env, log = simpy.Environment(), []
        done = _world(env, log)
        value = runner(env, done if until == "event" else until)
        results.append((log, value, env.now, next(env._eid), len(env._queue)))
    assert results[0] == results[1]


def test_run_raises_as_simpy_does():
    env = simpy.Environment()
    env.timeout(1.0)
    with pytest.raises(RuntimeError):
        run(env, until=env.event())  # nothing left and the event never triggered
    with pytest.raises(ValueError):
        run(env, until=0.5)  # not after the clock
    failed = env.event()
    failed.fail(KeyError("boom"))
    with pytest.raises(KeyError):
        run(env)
