"""One error type for everything a user can get wrong.

The CLI turns a ConfigError into a one-paragraph message and exit code 2; it never shows a
traceback for bad input. `path` is the dotted YAML path (or file:line) of what is wrong.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

_SCALAR_BRANCHES = {"str", "int", "float", "bool", "none"}
# A step pydantic adds to an error's location for a branch of a union or a wrapping validator,
# never a key of the user's YAML: function-after[...], list[...], dict[...], nullable[...], ...
_BRANCH_TAG = re.compile(r"^[a-z][a-z-]*\[.*\]$")
# A branch tag of a model (its last name is a class): function-after[_check(), PoolSpec]
_MODEL_TAG = re.compile(r"[A-Z]\w*\]*$")
_MAX_SHOWN = 80  # characters of a value echoed back; the rest is elided
# pydantic's type errors, in the words of a YAML file
_PLAIN = {
    "model_type": "should be a mapping of keys to values", "dict_type": "should be a mapping of keys to values",
    "model_attributes_type": "should be a mapping of keys to values", "list_type": "should be a list",
    "string_type": "should be text", "int_type": "should be a whole number",
    "int_parsing": "should be a whole number", "int_from_float": "should be a whole number",
    "float_type": "should be a number", "float_parsing": "should be a number",
    "bool_type": "should be true or false", "bool_parsing": "should be true or false",
}
_SHOULD = re.compile(r"^should be (.*?)( \(got .*\))?$")
_MAX_ALSO = 4  # further errors named after the first


class ConfigError(Exception):
    """Bad user input: where (`source` file, `path` in it) and what to do about it (`message`)."""

    def __init__(self, path: str, message: str, source: str = ""):
        self.path = path
        self.message = message
        self.source = source
        super().__init__(": ".join(p for p in (source, path, message) if p))


def did_you_mean(word: str, choices) -> str:
    import difflib  # (only when an error is reported)

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def _yaml_path(loc: tuple, raw: Any) -> str | None:
    """Dotted path of a pydantic error location as the user wrote it.

    Steps pydantic inserts that are not YAML keys (a discriminated union's tag, a union
    member's type, a validator wrapping it) are left out. None means the error belongs to a
    union branch the user evidently did not mean (a list branch when they wrote a mapping, a
    mapping branch when they wrote a list, a scalar branch when they wrote either).
    """
    parts: list[str] = []
    node = raw
    for step in loc:
        step_s = str(step)
        if isinstance(step, int):
            parts[-1:] = [f"{parts[-1]}[{step}]"] if parts else [f"[{step}]"]
            node = node[step] if isinstance(node, list) and -len(node) <= step < len(node) else None
            continue
        if not (isinstance(node, dict) and step_s in node):
            branch = _branch(step_s, node)
            if branch is False:
                return None
            if branch:
                continue
        parts.append(step_s)
        node = node.get(step_s) if isinstance(node, dict) else None
    return ".".join(parts)


def _branch(step: str, node: Any) -> bool | None:
    """Is `step` a union branch or validator pydantic inserted (True), the branch of a type the
    user did not write (False), or a key (None)?"""
    if isinstance(node, dict) and node.get("kind") == step:
        return True  # discriminated union tag
    if step in _SCALAR_BRANCHES:
        return False if isinstance(node, (dict, list)) else True
    if _BRANCH_TAG.match(step):
        if step.startswith(("list[", "tuple[", "set[")):
            return isinstance(node, list) or (False if isinstance(node, dict) else True)
        if step.startswith("dict["):
            return isinstance(node, dict) or (False if isinstance(node, list) else True)
        if _MODEL_TAG.search(step) and isinstance(node, list):
            return False  # a mapping's branch when a list was written
        return True
    if step[:1].isupper():  # a model branch of a union
        return False if isinstance(node, list) else True
    return None


def _known_keys(schema: Any, loc: tuple) -> set[str]:
    """The keys the mapping at `loc` may have, found by walking the schema's annotations along
    the error location (through unions, lists and dicts); empty when it cannot tell."""
    current = [schema]
    for step in loc:
        following = []
        for tp in _members(current):
            fields = getattr(tp, "model_fields", None)
            origin = typing.get_origin(tp)
            if fields is not None and isinstance(step, str) and step in fields:
                following.append(fields[step].annotation)
            elif origin in (list, tuple, set) and isinstance(step, int):
                following.extend(typing.get_args(tp)[:1])
            elif origin is dict and isinstance(step, str):
                following.extend(typing.get_args(tp)[1:2])
        if following:
            current = following
        elif not (isinstance(step, str) and (_BRANCH_TAG.match(step) or step[:1].isupper()
                                             or step in _SCALAR_BRANCHES)) and not _is_tag(current, step):
            return set()
    return {name for tp in _members(current) for name in (getattr(tp, "model_fields", None) or {})}


def _members(types_: list) -> list:
    """Concrete types of a list of annotations: Annotated and unions unwrapped."""
    out, todo = [], list(types_)
    while todo:
        tp = todo.pop()
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            todo.append(typing.get_args(tp)[0])
        elif origin in (typing.Union, types.UnionType):
            todo.extend(typing.get_args(tp))
        else:
            out.append(tp)
    return out


def _is_tag(current: list, step: Any) -> bool:
    """Is `step` the `kind` of one of the models (a discriminated union's tag)?"""
    for tp in _members(current):
        kind = (getattr(tp, "model_fields", None) or {}).get("kind")
        if kind is not None and step in typing.get_args(kind.annotation):
            return True
    return False


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _message(err: dict, key: str, schema: Any, loc: tuple) -> str:
    """The error in the user's terms, without pydantic's type names."""
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        known = _known_keys(schema, loc[:-1]) if schema is not None else set()
        hint = did_you_mean(key, known)
        return f"unknown key (misspelled?); {hint}remove it or use one of the documented keys"
    if kind == "missing":
        return "required field is missing"
    if kind in _PLAIN:
        msg = _PLAIN[kind]
    elif kind == "union_tag_invalid":
        tag, expected = str(ctx.get("tag", "")), str(ctx.get("expected_tags", ""))
        names = [t.strip(" '") for t in expected.split(",")]
        return f"unknown kind {tag!r}; {did_you_mean(tag, names)}use one of {', '.join(names)}"
    elif kind == "union_tag_not_found":
        return f"needs a `{ctx.get('discriminator', 'kind').strip(chr(39))}:` naming which kind it is"
    got = err.get("input")
    if not isinstance(got, (dict, list)):
        msg += f" (got {_shown(got)})"
    return msg


def _either(first: str, second: str) -> str | None:
    """'should be a list (got 4)' and 'should be text (got 4)' -> 'should be a list or text (got 4)'."""
    a, b = _SHOULD.match(first), _SHOULD.match(second)
    if not (a and b):
        return None
    return f"should be {a.group(1)} or {b.group(1)}{a.group(2) or ''}"


def from_validation_error(exc, prefix: str = "", source: str = "", raw: Any = None,
                          schema: Any = None) -> ConfigError:
    """Turn a pydantic ValidationError into a ConfigError: the first bad field, then a few others.

    `raw` is the data that was validated; with it, paths are the user's YAML paths. `schema`
    (the model validated against) lets a misspelled key get a "did you mean".
    """
    found: list[tuple[str, str]] = []
    errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")  # misspellings first
    for err in errors:
        loc_raw = tuple(err.get("loc", ()))
        loc = _yaml_path(loc_raw, raw)
        if loc is None and len(errors) > 1:
            continue
        path = ".".join(p for p in (prefix, loc or "") if p)
        key = str(loc_raw[-1]) if loc_raw else ""
        message = _message(err, key, schema, loc_raw)
        same = next((i for i, (p, _) in enumerate(found) if p == path), None)
        if same is None:
            found.append((path, message))
        elif (merged := _either(found[same][1], message)) is not None:
            found[same] = (path, merged)  # one field, two types it could be: say both at once
        elif (path, message) not in found:
            found.append((path, message))
    if not found:
        return ConfigError(prefix, str(exc), source)
    path, message = found[0]
    also = found[1:]
    if also:
        message += "; also " + "; ".join(f"{p or '<top level>'}: {m}" for p, m in also[:_MAX_ALSO])
        if len(also) > _MAX_ALSO:
            message += f"; and {len(also) - _MAX_ALSO} more"
    return ConfigError(path, message, source)
