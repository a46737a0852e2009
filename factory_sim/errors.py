"""One error type for everything a user can get wrong.

The CLI turns a ConfigError into a one-paragraph message and exit code 2; it never shows a
traceback for bad input. `path` is the dotted YAML path (or file:line) of what is wrong.
"""

from __future__ import annotations

from typing import Any

_SCALAR_BRANCHES = {"str", "int", "float", "bool"}


class ConfigError(Exception):
    """Bad user input: where (`source` file, `path` in it) and what to do about it (`message`)."""

    def __init__(self, path: str, message: str, source: str = ""):
        self.path = path
        self.message = message
        self.source = source
        super().__init__(": ".join(p for p in (source, path, message) if p))


def _yaml_path(loc: tuple, raw: Any) -> str | None:
    """Dotted path of a pydantic error location as the user wrote it.

    Steps pydantic inserts that are not YAML keys (a discriminated union's tag, a union
    member's type name) are left out. None means the error belongs to a union branch the
    user evidently did not mean (a scalar branch when they wrote a mapping).
    """
    parts: list[str] = []
    node = raw
    for step in loc:
        step_s = str(step)
        if step_s.startswith("function-"):
            continue
        if isinstance(step, int):
            parts[-1:] = [f"{parts[-1]}[{step}]"] if parts else [f"[{step}]"]
            node = node[step] if isinstance(node, list) and -len(node) <= step < len(node) else None
            continue
        if isinstance(node, dict) and step_s not in node:
            if node.get("kind") == step_s:
                continue  # discriminated union tag
            if step_s in _SCALAR_BRANCHES:
                return None  # the scalar branch of `str | Model` when a mapping was given
            if step_s[:1].isupper():
                continue  # a model branch of a union
        elif not isinstance(node, dict) and raw is not None and step_s[:1].isupper():
            continue
        parts.append(step_s)
        node = node.get(step_s) if isinstance(node, dict) else None
    return ".".join(parts)


def from_validation_error(exc, prefix: str = "", source: str = "", raw: Any = None) -> ConfigError:
    """Turn a pydantic ValidationError into a ConfigError: the first bad field, then any others.

    `raw` is the data that was validated; with it, paths are the user's YAML paths.
    """
    found: list[tuple[str, str]] = []
    errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")  # misspellings first
    for err in errors:
        loc = _yaml_path(tuple(err.get("loc", ())), raw)
        if loc is None and len(errors) > 1:
            continue
        path = ".".join(p for p in (prefix, loc or "") if p)
        kind = err.get("type", "")
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown key (misspelled?); remove it or use one of the documented keys"
        elif kind == "missing":
            msg = "required field is missing"
        got = err.get("input")
        if kind not in ("extra_forbidden", "missing") and not isinstance(got, (dict, list)):
            msg += f" (got {got!r})"
        found.append((path, msg))
    if not found:
        return ConfigError(prefix, str(exc), source)
    path, message = found[0]
    if len(found) > 1:
        message += "; also " + "; ".join(f"{p or '<top level>'}: {m}" for p, m in found[1:])
    return ConfigError(path, message, source)
