"""A replica's prefix (KV) cache: prompt blocks kept after their request, reused by the next.

Block-granular, as vLLM's and SGLang's caches are: a request's prompt is a sequence of
blocks of `block_tokens` tokens, each named by a hash of its content and everything before
it, so equal hashes mean an equal prefix. A request reuses the longest run of leading blocks
the replica still holds and prefills only the rest.

Memory: the cache lives in the KV memory the memory model leaves, in whatever the running
requests have not reserved (times `hbm_fraction`); when a new request needs room, least
recently used blocks go first. An optional host-memory tier takes the evicted blocks and
gives them back at the host link's speed. Blocks a running request reads stay counted in its
own reservation too (a simplification: the cache is slightly smaller than in a real engine,
where shared blocks are counted once).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PrefixCacheSettings:
    """A pool's cache settings; block size comes from the workload's hashes."""

    hbm_fraction: float = 1.0  # share of the unreserved KV memory the cache may hold
    host_bytes_per_gpu: float = 0.0  # host-memory tier per GPU (0: none)
    host_bytes_per_s_per_gpu: float = 0.0  # host -> HBM bandwidth per GPU, for blocks found there


class PrefixCache:
    def __init__(self, plan: PrefixCacheSettings, block_tokens: int, block_bytes: float):
        self.block_tokens = block_tokens
        self._block_bytes = block_bytes  # per GPU, like the replica's KV figures
        self._fraction = plan.hbm_fraction
        self._host_blocks = int(plan.host_bytes_per_gpu // block_bytes) if block_bytes > 0 else 0
        self._host_block_s = block_bytes / plan.host_bytes_per_s_per_gpu if plan.host_bytes_per_s_per_gpu else 0.0
        self._hbm: OrderedDict[int, None] = OrderedDict()  # least recently used first
        self._host: OrderedDict[int, None] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._fraction > 0

    def match(self, blocks: Sequence[int]) -> tuple[int, int]:
        """Leading blocks held: (in HBM, then in host memory), stopping at the first miss."""
        hbm, host = self._hbm, self._host
        n = 0
        for h in blocks:
            if h not in hbm:
                break
            n += 1
        m = 0
        if host:
            for h in blocks[n:]:
                if h not in host:
                    break
                m += 1
        return n, m

    def use(self, blocks: Sequence[int], hbm_hits: int, host_hits: int) -> float:
        """Mark the hit blocks recently used, bring host hits back to HBM; the seconds that takes."""
        for h in blocks[:hbm_hits]:
            self._hbm.move_to_end(h)
        for h in blocks[hbm_hits:hbm_hits + host_hits]:
            del self._host[h]
            self._hbm[h] = None
        return host_hits * self._host_block_s

    def insert(self, blocks: Sequence[int]) -> None:
        """A prefill finished: its prompt's blocks are the most recently used."""
        hbm = self._hbm
        for h in blocks:
            if h in hbm:
                hbm.move_to_end(h)
            else:
                hbm[h] = None
                self._host.pop(h, None)

    def trim(self, free_bytes: float) -> None:
        """Evict least recently used blocks until the cache fits its share of free KV memory."""
        limit = max(int(self._fraction * free_bytes // self._block_bytes), 0)
        hbm, host = self._hbm, self._host
        while len(hbm) > limit:
            h, _ = hbm.popitem(last=False)
            if self._host_blocks:
                host[h] = None
                if len(host) > self._host_blocks:
                    host.popitem(last=False)

    def clear(self) -> None:
        self._hbm.clear()
        self._host.clear()

    def __len__(self) -> int:
        return len(self._hbm)
