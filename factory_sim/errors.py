"""One error type for everything a user can get wrong.

The CLI turns a ConfigError into a one-paragraph message and exit code 2; it never shows a
traceback for bad input. `path` is the dotted YAML path (or file:line) of what is wrong.
"""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """Bad user input: names where (`path`) and what to do about it (`message`)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def _yaml_path(loc: tuple, raw: Any) -> str:
    """Dotted path of a pydantic error location, without union-tag steps that are not YAML keys."""
    parts: list[str] = []
    node = raw
    for step in loc:
        step_s = str(step)
        if step_s.startswith("function-"):
            continue
        if isinstance(node, dict) and step_s not in node and node.get("kind") == step_s:
            continue  # discriminated union: pydantic inserts the tag, the YAML has no such key
        if isinstance(step, int):
            parts[-1:] = [f"{parts[-1]}[{step}]"] if parts else [f"[{step}]"]
            node = node[step] if isinstance(node, list) and -len(node) <= step < len(node) else None
            continue
        parts.append(step_s)
        node = node.get(step_s) if isinstance(node, dict) else None
    return ".".join(parts)


def from_validation_error(exc, prefix: str = "", source: str = "", raw: Any = None) -> ConfigError:
    """Turn a pydantic ValidationError into a ConfigError that lists every bad field.

    `raw` is the data that was validated; with it, union-tag steps are left out of paths.
    """
    lines = []
    first_path = prefix
    for err in exc.errors():
        loc = _yaml_path(tuple(err.get("loc", ())), raw)
        path = ".".join(p for p in (prefix, loc) if p)
        if not lines:
            first_path = path
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown key (misspelled?); remove it or use one of the documented keys"
        elif kind == "missing":
            msg = "required field is missing"
        got = err.get("input")
        shown = "" if kind in ("extra_forbidden", "missing") or isinstance(got, (dict, list)) else f" (got {got!r})"
        lines.append(f"{path or '<top level>'}: {msg}{shown}")
    where = f"{source}: " if source else ""
    return ConfigError(first_path, where + "; ".join(lines))
