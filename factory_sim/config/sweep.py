"""Sweep schema: a base experiment and the fields to vary (studies/sweep.py runs it)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The sweep's name is the default results file's name (<name>_results.csv): a plain file name,
# so it cannot point outside the folder the sweep runs in.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class SweepAxes(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shapes(self):
        for kind, axes in (("grid", self.grid), ("zip", self.zip)):
            for path, values in axes.items():
                if not values:
                    raise ValueError(f"{kind}.{path}: give at least one value")
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip: every list must have the same length, got lengths {sorted(lengths)}")
        overlap = set(self.grid) & set(self.zip)
        if overlap:
            raise ValueError(f"a field is both in grid and zip: {', '.join(sorted(overlap))}")
        if not self.grid and not self.zip:
            raise ValueError("name at least one field to vary under grid: or zip:")
        return self


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = "sweep"

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _FILE_NAME.fullmatch(value) or ".." in value:
            raise ValueError("must be a plain name of letters, digits, '_', '-' and '.' (at most 100, not starting "
                             "with '.'): it names the results file <name>_results.csv in the current folder; "
                             "give --out to write elsewhere")
        return value
    base: str | dict[str, Any] = Field(default="default", description="'default', an experiment path, or a mapping")
    sweep: SweepAxes
