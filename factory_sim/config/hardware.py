"""Hardware profiles: what one GPU of a system kind can do, and what it costs.

Profiles are YAML files in human units (GB, TB/s, TFLOPS); the model exposes SI
properties so that the step-time and cost models never convert units themselves.
Loading them by name or path is the catalog's job (factory_sim/catalog.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory_sim.catalog import builtin_names, load
from factory_sim.config.bounds import UsdPerGpu, within
from factory_sim.config.bounds import UsdPerGpuHour as GpuHourPrice
from factory_sim.errors import ConfigError

Precision = Literal["bf16", "fp8", "fp4"]
PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "fp4")


def _Positive(high: float, why: str):  # noqa: N802 (a type)
    return Annotated[float, within(0, high, why, above=True)]


class UsdPerGpuHour(BaseModel):
    """Price tiers per GPU-hour; which tier applies is the cost model's choice."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    hyperscaler: GpuHourPrice
    neocloud: GpuHourPrice
    rental_3yr: GpuHourPrice


class FaultRate(BaseModel):
    """Mean time between failures of one unit, and to bring its capacity back (repair or swap)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    # the profiles' GPU figure is 86,300 h (Llama 3 Herd of Models, arXiv:2407.21783, Table 5)
    mtbf_hours: Annotated[float, within(0.01, 1e9, "hours; under 36 s a unit fails faster than it restarts, "
                                                   "over 1e9 h it never fails in a run")]
    mttr_hours: Annotated[float, within(0, 1e5, "hours; 11 years is no repair")]
    per_domain: Annotated[int, within(1, 1024, "units per scale-up domain")] = Field(
        default=1, description="units per scale-up domain (switches)")


class Reliability(BaseModel):
    """Fault rates per unit kind: a GPU, a node (HGX baseboard or NVL72 compute tray), an
    NVLink switch (tray) of a scale-up domain, the rack (the whole domain). A kind left out
    does not fail."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    gpu: FaultRate | None = None
    node: FaultRate | None = None
    switch: FaultRate | None = None
    rack: FaultRate | None = None


class HardwareProfile(BaseModel):
    """One GPU of a system kind plus the system facts (domain size, purchase unit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    generation: Literal["hopper", "blackwell", "blackwell_ultra"]
    # Ranges are 100x (or more) the largest figure of the shipped profiles (hardware_profiles/).
    gpus_per_node: Annotated[int, within(1, 1024, "GPUs per server or tray; the profiles have 4 or 8")]
    gpus_per_scaleup_domain: Annotated[int, within(1, 4096, "GPUs per NVLink domain; the largest announced has 576")]
    purchase_unit: Literal["node", "rack"]
    gpus_per_purchase_unit: Annotated[int, within(1, 100_000, "GPUs per unit bought")]
    hbm_gb: _Positive(100_000, "GB per GPU; the profiles' largest is 288 GB")
    hbm_tb_per_s: _Positive(1000, "TB/s per GPU; the profiles' largest is 8")
    dense_tflops: dict[Precision, _Positive(1e6, "dense TFLOPS per GPU; the profiles' largest is 15,000")]
    nvlink_gb_per_s_per_gpu: _Positive(1e5, "GB/s per GPU per direction; the profiles' largest is 900")
    scaleout_gb_per_s_per_gpu: _Positive(1e5, "GB/s per GPU; the profiles' largest is 100")
    gpu_tdp_w: _Positive(1e5, "W per GPU; the profiles' largest is 1,400")
    allin_kw_per_gpu: _Positive(200, "kW per GPU all-in; the profiles' largest is under 3")
    usd_per_gpu_hour: UsdPerGpuHour
    placeholder_price: bool = False
    capex_usd_per_gpu: UsdPerGpu | None = None
    default_stack: str = Field(min_length=1)
    reliability: Reliability = Reliability()

    @field_validator("dense_tflops")
    @classmethod
    def _tflops_has_bf16_and_fp8(cls, value: dict[str, float]) -> dict[str, float]:
        missing = [p for p in ("bf16", "fp8") if p not in value]
        if missing:
            raise ValueError(f"must give dense TFLOPS for {' and '.join(missing)} (fp4 is optional)")
        return value

    @model_validator(mode="after")
    def _domain_is_whole_nodes(self) -> HardwareProfile:
        if self.gpus_per_scaleup_domain % self.gpus_per_node:
            raise ValueError(
                f"gpus_per_scaleup_domain ({self.gpus_per_scaleup_domain}) must be a multiple of "
                f"gpus_per_node ({self.gpus_per_node})"
            )
        return self

    @property
    def hbm_bytes(self) -> float:
        return self.hbm_gb * 1e9

    @property
    def hbm_bw_bytes_per_s(self) -> float:
        return self.hbm_tb_per_s * 1e12

    @property
    def nvlink_bw_bytes_per_s(self) -> float:
        """Per GPU, per direction."""
        return self.nvlink_gb_per_s_per_gpu * 1e9

    @property
    def scaleout_bw_bytes_per_s(self) -> float:
        return self.scaleout_gb_per_s_per_gpu * 1e9

    @property
    def supported_precisions(self) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS if p in self.dense_tflops)

    def supports(self, precision: str) -> bool:
        return precision in self.dense_tflops

    def dense_flops_per_s(self, precision: str) -> float:
        """Dense tensor peak; an unsupported precision is a configuration mistake, not a zero."""
        if not self.supports(precision):
            raise ConfigError(
                "precision",
                f"{self.name} ({self.display_name}) has no {precision!r} tensor-core peak; "
                f"supported precisions: {', '.join(self.supported_precisions)}",
            )
        return self.dense_tflops[precision] * 1e12  # type: ignore[index]


def load_hardware(name_or_path: str | Path) -> HardwareProfile:
    """A built-in profile by name (e.g. 'gb200_nvl72') or a user's profile YAML by path."""
    return load("hardware", name_or_path, HardwareProfile)


def list_hardware() -> list[HardwareProfile]:
    return [load_hardware(n) for n in builtin_names("hardware")]
