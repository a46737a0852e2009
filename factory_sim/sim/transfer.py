"""KV-cache transfer from a prefill replica to a decode replica.

Time = KV bytes / link bandwidth + a fixed set-up latency. Inside one NVLink domain (both
replicas in the same NVL72 rack or HGX node) the KV moves over NVLink; otherwise over the
scale-out NIC. Each GPU of the smaller side moves its shard in parallel. Concurrent
transfers do not slow each other (links are assumed not to saturate).
"""

from __future__ import annotations


def kv_link(prefill, decode) -> tuple[float, float]:
    """(bytes/s, set-up latency s) of the KV path between two replicas."""
    shape = prefill.shape
    lanes = min(shape.gpus, decode.shape.gpus)
    same_domain = (
        shape.hardware.name == decode.shape.hardware.name
        and len(prefill.domains) == 1
        and prefill.domains == decode.domains
    )
    if same_domain:
        bw = shape.hardware.nvlink_bw_bytes_per_s * shape.stack.nvlink_efficiency
    else:
        bw = min(shape.hardware.scaleout_bw_bytes_per_s, decode.shape.hardware.scaleout_bw_bytes_per_s)
        bw *= shape.stack.scaleout_efficiency
    return bw * lanes, shape.stack.kv_transfer_latency_s
