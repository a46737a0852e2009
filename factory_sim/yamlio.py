"""Reading the YAML files users write: one place for file, syntax and schema errors.

Every loader (hardware profiles, models, stacks, workloads, experiments, plans, sweeps)
reports a missing file, a YAML syntax error (with file:line), a non-mapping top level, and a
schema violation (with the YAML path of the field) the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from factory_sim.errors import ConfigError, from_validation_error

M = TypeVar("M", bound=BaseModel)


def parse_mapping(text: str, source: str, hint: str = "a mapping of keys to values") -> dict[str, Any]:
    """Parse YAML that must be a mapping; syntax errors point at file:line."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected {hint} at the top level")
    return data


def read_mapping(path: str | Path, what: str, hint: str = "a mapping of keys to values") -> dict[str, Any]:
    """Read a user's YAML file that must hold a mapping."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("", f"cannot read {what} file {p}: {exc.strerror or exc}") from None
    return parse_mapping(text, str(p), hint)


def validate(model: type[M], raw: dict[str, Any], source: str) -> M:
    """Validate a mapping against a schema; errors name the YAML path of each bad field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, source=source, raw=raw) from None
