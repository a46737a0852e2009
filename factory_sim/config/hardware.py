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
from factory_sim.errors import ConfigError

Precision = Literal["bf16", "fp8", "fp4"]
PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "fp4")


class UsdPerGpuHour(BaseModel):
    """Price tiers per GPU-hour; which tier applies is the cost model's choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hyperscaler: float = Field(gt=0)
    neocloud: float = Field(gt=0)
    rental_3yr: float = Field(gt=0)


class FaultRate(BaseModel):
    """Mean time between failures of one unit, and to bring its capacity back (repair or swap)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mtbf_hours: float = Field(gt=0)
    mttr_hours: float = Field(ge=0)
    per_domain: int = Field(default=1, ge=1, description="units per scale-up domain (switches)")


class Reliability(BaseModel):
    """Fault rates per unit kind: a GPU, a node (HGX baseboard or NVL72 compute tray), an
    NVLink switch (tray) of a scale-up domain, the rack (the whole domain). A kind left out
    does not fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: FaultRate | None = None
    node: FaultRate | None = None
    switch: FaultRate | None = None
    rack: FaultRate | None = None


class HardwareProfile(BaseModel):
    """One GPU of a system kind plus the system facts (domain size, purchase unit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    generation: Literal["hopper", "blackwell", "blackwell_ultra"]
    gpus_per_node: int = Field(gt=0)
    gpus_per_scaleup_domain: int = Field(gt=0)
    purchase_unit: Literal["node", "rack"]
    gpus_per_purchase_unit: int = Field(ge=1)
    hbm_gb: float = Field(gt=0)
    hbm_tb_per_s: float = Field(gt=0)
    dense_tflops: dict[Precision, Annotated[float, Field(gt=0)]]
    nvlink_gb_per_s_per_gpu: float = Field(gt=0)
    scaleout_gb_per_s_per_gpu: float = Field(gt=0)
    gpu_tdp_w: float = Field(gt=0)
    allin_kw_per_gpu: float = Field(gt=0)
    usd_per_gpu_hour: UsdPerGpuHour
    placeholder_price: bool = False
    capex_usd_per_gpu: float | None = Field(default=None, gt=0)
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
