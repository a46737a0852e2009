"""The catalog: every built-in file and every user's file, found and read one way.

A hardware profile, model, software stack, workload, trace, reference table or experiment
is named either by a built-in name (forgiving case and '-') or by a path to the user's own
file. One resolver answers both, with the same "did you mean" hint for every kind, and one
reader turns YAML into a validated schema with file:line for syntax errors and the YAML
path of each bad field. Built-ins are read with importlib.resources, so a wheel install
finds them as the source tree does.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from factory_sim.errors import ConfigError, did_you_mean, from_validation_error

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Kind:
    """Where one kind of built-in file lives and how a user's file of that kind is named."""

    package: str  # the importable package that holds the folder
    folder: str  # folder inside the package ("" for the package itself)
    suffixes: tuple[str, ...]  # what a file of this kind ends with
    what: str  # the word in messages: "hardware profile", "model", ...
    prefix: str = ""  # what schema errors in such a file are rooted at

    @property
    def label(self) -> str:
        """How a built-in file is named in messages: its folder and file name."""
        return self.folder.split("/")[-1] or self.package.split(".")[-1]


KINDS: dict[str, Kind] = {
    # top-level hardware_profiles/ and workloads/, shipped as these packages (pyproject.toml)
    "hardware": Kind("factory_sim.hardware_profiles", "", (".yaml", ".yml"), "hardware profile", "hardware"),
    "workload": Kind("factory_sim.workloads", "", (".yaml", ".yml"), "workload"),
    "model": Kind("factory_sim", "data/models", (".yaml", ".yml"), "model", "model"),
    "stack": Kind("factory_sim", "data/stacks", (".yaml", ".yml"), "software stack profile"),
    "experiment": Kind("factory_sim", "data/experiments", (".yaml", ".yml"), "experiment"),
    "trace": Kind("factory_sim", "data/traces", (".csv", ".csv.gz", ".jsonl", ".jsonl.gz"), "trace"),
    "reference": Kind("factory_sim", "data/reference", (".csv", ".csv.gz"), "reference table"),
    "inferencex": Kind("factory_sim", "data/reference/inferencex", (".csv.gz",), "InferenceX points file"),
}


def _stem(name: str, suffixes: tuple[str, ...]) -> str | None:
    for suffix in sorted(suffixes, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


@functools.cache
def builtin_files(kind: str) -> dict[str, Traversable]:
    """The built-in files of a kind by name (file name without its suffix)."""
    k = KINDS[kind]
    try:
        folder = resources.files(k.package)
    except ModuleNotFoundError:
        # a source checkout imported ahead of the installed package (pytest from the repo
        # root): the top-level folder that the wheel maps into the package
        folder = Path(__file__).resolve().parent.parent / k.package.rsplit(".", 1)[-1]
    for part in filter(None, k.folder.split("/")):
        folder = folder / part
    found = {}
    for entry in folder.iterdir():
        stem = _stem(entry.name, k.suffixes) if entry.is_file() else None
        if stem is not None:
            found[stem] = entry
    return found


def builtin_names(kind: str) -> list[str]:
    return sorted(builtin_files(kind))


def builtin_path(kind: str, name: str) -> Path:
    """A built-in file as a filesystem path (package data is a real folder in every install we ship)."""
    return Path(str(builtin_files(kind)[name]))


def resolve(kind: str, name_or_path: str | Path, field: str | None = None) -> tuple[str, Traversable | Path, bool]:
    """(source label, file, is_builtin) of a built-in name or a user's file path.

    `field` is the config path named in errors (default: the kind).
    """
    k = KINDS[kind]
    field = field or kind
    text = str(name_or_path)
    known = builtin_files(kind)
    key = text.strip().lower().replace("-", "_")
    if key in known and not isinstance(name_or_path, Path):
        return key, known[key], True
    path = Path(text).expanduser()
    if path.is_file():
        return str(path), path, False
    if _stem(text, k.suffixes) is not None or "/" in text or "\\" in text:
        raise ConfigError(field, f"{k.what} file {text!r} does not exist; give an existing file or a built-in name "
                                 f"({', '.join(sorted(known))})")
    raise ConfigError(field, f"unknown {kind} {text!r}; {did_you_mean(key, known)}known: "
                             f"{', '.join(sorted(known))}, or give a path to a {k.what} file")


# --- YAML ---------------------------------------------------------------------------------


class _Duplicate(yaml.MarkedYAMLError):
    """A key given twice in one mapping."""


# libyaml's parser (PyYAML's C extension) when it is built in: the same documents, values and
# marks as the pure-Python SafeLoader, parsed about ten times as fast (a stack file in 1 ms
# instead of 12, paid by every run's start).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UniqueKeyLoader(_SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping: PyYAML keeps the last one
    silently, so a second `requests:` further down would change results unseen."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges keys its mapping may then override
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key; the constructor reports it
                continue
            if first is not key_node.start_mark:
                raise _Duplicate(problem=f"duplicate key {str(key)[:60]!r} (first given on line {first.line + 1}); "
                                         "give each key once", problem_mark=key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# Deepest nesting of a file's mappings and lists: the deepest schema nests about 8 levels
# (experiment > faults > overrides > hardware > kind > field); 64 leaves room to spare.
MAX_DEPTH = 64


def parse_mapping(text: str, source: str, hint: str = "a mapping of keys to values") -> dict[str, Any]:
    """Parse YAML that must be a mapping; syntax errors point at file:line."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(source, f"nested too deeply to read (no field of these files nests more than "
                                  f"{MAX_DEPTH} levels)") from None
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected {hint} at the top level")
    _check_depth(data, source)
    return data


def _check_depth(data: Any, source: str) -> None:
    todo = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(source, f"nested more than {MAX_DEPTH} levels deep; no field of these files nests "
                                      "that deep")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def read_mapping(path: str | Path | Traversable, what: str,
                 hint: str = "a mapping of keys to values") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; the files it names by a relative path are
    found beside it (see `anchor`)."""
    try:
        text = path.read_text(encoding="utf-8") if not isinstance(path, str) else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"cannot read {what} file {path}: it is not UTF-8 text") from None
    data = parse_mapping(text, str(path), hint)
    if isinstance(path, (str, Path)):
        anchor(data, Path(path).parent)
    return data


# Keys whose value names a file of that kind (or a built-in of it).
FILE_KEYS = {"model": "model", "workload": "workload", "hardware": "hardware", "stack": "stack", "trace": "trace"}


def anchor(node: Any, folder: Path) -> Any:
    """Make the relative file names in a mapping read from a file in `folder` relative to that
    folder, in place: an experiment's trace, workload or hardware file is found beside it,
    whatever the current directory. A name that is built in, absolute, or no file beside it
    is left as written."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in FILE_KEYS and isinstance(value, str):
                node[key] = anchored(FILE_KEYS[key], value, folder)
            else:
                anchor(value, folder)
    elif isinstance(node, list):
        for item in node:
            anchor(item, folder)
    return node


def anchored(kind: str, name: str, folder: Path) -> str:
    """`name` as a path beside `folder` when it is a relative file name found there."""
    if name.strip().lower().replace("-", "_") in builtin_files(kind) or not name.strip():
        return name
    try:
        path = Path(name).expanduser()
        if path.is_absolute() or not (folder / path).is_file():
            return name
    except (OSError, ValueError):  # a name no file system takes: the resolver reports it
        return name
    return os.path.normpath(folder / path)


def parse(schema: type[M], raw: dict[str, Any], source: str = "", prefix: str = "") -> M:
    """Validate a mapping against a schema: the one place pydantic errors become ConfigErrors."""
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=prefix, source=source, raw=raw, schema=schema) from None
    except RecursionError:
        raise ConfigError(prefix, "nested too deeply to validate", source) from None


def check_kind(raw: dict[str, Any], schema: type[BaseModel], source: str, what: str) -> None:
    """Refuse a file with none of the keys a file of its kind has (a file named by mistake,
    e.g. a system file), without echoing any of its contents."""
    fields = schema.model_fields
    if raw and not any(isinstance(k, str) and k in fields for k in raw):
        required = [name for name, f in fields.items() if f.is_required()][:6]
        article = "an" if what[:1] in "aeiou" else "a"
        raise ConfigError("", f"is not {article} {what} file: it has none of the keys {article} {what} file has "
                              f"({', '.join(required or list(fields)[:6])}, ...)", source)


def load(kind: str, name_or_path: str | Path, schema: type[M], *, field: str | None = None,
         name_from_file: bool = False) -> M:
    """A built-in or user's YAML of `kind`, validated; built-ins are read once.

    With `name_from_file`, a file without a `name` is named after the file.
    """
    source, file, is_builtin = resolve(kind, name_or_path, field)
    if is_builtin:
        return _load_builtin(kind, source, schema, name_from_file)
    return _read(file, source, kind, schema, name_from_file)


@functools.cache
def _load_builtin(kind: str, name: str, schema: type[M], name_from_file: bool) -> M:
    file = builtin_files(kind)[name]
    return _read(file, f"{KINDS[kind].label}/{file.name}", kind, schema, name_from_file)


def _read(file, source: str, kind: str, schema: type[M], name_from_file: bool) -> M:
    raw = read_mapping(file, KINDS[kind].what)
    check_kind(raw, schema, source, KINDS[kind].what)
    if name_from_file:
        raw.setdefault("name", _stem(Path(str(file)).name, KINDS[kind].suffixes))
    return parse(schema, raw, source, prefix=KINDS[kind].prefix)
