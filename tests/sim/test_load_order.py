"""A LoadOrder picks what min(candidates, key=outstanding_tokens) picks, after any changes."""

from __future__ import annotations

from operator import attrgetter

from hypothesis import given, settings
from hypothesis import strategies as st

from factory_sim.sim.load_order import LoadOrder


class _Replica:
    def __init__(self, load: int):
        self.outstanding_tokens = load
        self.load_sinks = ()

    def set_load(self, load: int) -> None:
        self.outstanding_tokens = load
        for sink, pos in self.load_sinks:
            sink.add(pos)


# loads from a small range, so that ties (the first of equal load wins) are common
_OPS = st.lists(st.tuples(st.integers(0, 39), st.integers(0, 6), st.booleans()), max_size=400)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(-3, 6), min_size=1, max_size=40), _OPS)
def test_least_is_min_with_ties_to_the_first(loads, ops):
    reps = [_Replica(x) for x in loads]
    order = LoadOrder(reps)
    for k, load, ask in ops:
        reps[k % len(reps)].set_load(load)
        if ask:  # several changes between two decisions, as between two arrivals
            assert order.least() is min(reps, key=attrgetter("outstanding_tokens"))
    assert order.least() is min(reps, key=attrgetter("outstanding_tokens"))


def test_two_orders_share_replicas_and_detach():
    reps = [_Replica(5) for _ in range(4)]
    a, b = LoadOrder(reps), LoadOrder(reps[1:])
    reps[2].set_load(1)
    assert a.least() is reps[2] and b.least() is reps[2]
    a.detach()
    assert all(len(r.load_sinks) == (1 if i else 0) for i, r in enumerate(reps))
    reps[3].set_load(0)
    assert b.least() is reps[3]


class _Served(_Replica):
    """A replica as the router sees it: load, shape and role (for least_loaded's speeds)."""

    def __init__(self, load: int, index: int, shape):
        super().__init__(load)
        self.index, self.shape, self.role, self.max_batch, self.max_batch_tokens = index, shape, "aggregated", 64, 2048


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["least_loaded", "least_outstanding_tokens"]), st.integers(0, 2**32 - 1))
def test_the_routers_direct_choice_is_the_policys(policy, seed):
    """A list the router answers from its LoadOrder directly gets what min over it gives, also
    after more lists than the router keeps orders for came and went."""
    import numpy as np

    from factory_sim.sim import router as router_module
    from tests.helpers import shape

    rng = np.random.default_rng(seed)
    llama = shape()
    reps = [_Served(int(x), i, llama) for i, x in enumerate(rng.integers(0, 5, 40))]
    lists = [reps[k:k + 20] for k in range(router_module._MAX_ORDERS + 3)]
    router = router_module.Router(policy, np.random.default_rng(0))
    for _ in range(300):
        reps[int(rng.integers(len(reps)))].set_load(int(rng.integers(0, 5)))
        candidates = lists[int(rng.integers(len(lists)))]
        assert router.choose(candidates) is min(candidates, key=attrgetter("outstanding_tokens"))
    assert router._direct  # the direct path ran


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(1, 3), (4, 17), (20, 2), (16, 16)]))
def test_least_loaded_over_pools_of_different_speeds_is_the_least_drain_time(seed, sizes):
    """Over runs of equally fast replicas (a DrainOrder: each run's LoadOrder, or min over a short
    run), least_loaded picks the first replica of least outstanding tokens over speed."""
    import numpy as np

    from factory_sim.perf.estimate import replica_tokens_per_s
    from factory_sim.sim import router as router_module
    from tests.helpers import shape

    rng = np.random.default_rng(seed)
    slow, fast = shape("h100_sxm"), shape("b200_hgx")
    reps = [_Served(int(x), i, slow if i < sizes[0] else fast) for i, x in enumerate(rng.integers(0, 40, sum(sizes)))]
    speed = {r.index: replica_tokens_per_s(r.shape, r.role, r.max_batch, r.max_batch_tokens) for r in reps}
    router = router_module.Router("least_loaded", np.random.default_rng(0))
    for _ in range(200):
        for _ in range(int(rng.integers(0, 4))):
            reps[int(rng.integers(len(reps)))].set_load(int(rng.integers(0, 40)))
        assert router.choose(reps) is min(reps, key=lambda r: r.outstanding_tokens / speed[r.index])
    assert id(reps) in router._direct  # answered by its DrainOrder directly
