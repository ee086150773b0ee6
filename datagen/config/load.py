"""Reading YAML configs: bundled names or paths, `--set a.b=c` overrides, and pydantic errors
turned into one line naming the file (or the --set flag) and the key. Shared with train/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from datagen.errors import UserError
from datagen.resources import bundled_config_dir


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a bundled config (`demo`, `sigma_set27k`)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    bundled = bundled_config_dir() / f"{p.stem if p.suffix in ('.yaml', '.yml') else p.name}.yaml"
    if p.parent == Path(".") and bundled.is_file():
        return bundled
    if p.exists():
        raise UserError(f"{name_or_path}: not a file")
    raise UserError(f"{name_or_path}: config file not found")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:  # an empty file, or comments only: never run silently on every default
        raise UserError(f"{path}: the config is empty; name at least one section (e.g. run:), or write {{}} for every default")
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, str]:
    """Apply `a.b=c` overrides in place; values parse as YAML scalars. Returns key -> flag text."""
    sources: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"--set {item}: expected KEY=VALUE with a dotted key, e.g. run.seed=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {item}: {part} is not a section")
            node = child
        node[parts[-1]] = value
        sources[key] = f"--set {item}"
    return sources


def _format_error(err: dict[str, Any], source: str, flag_sources: dict[str, str]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    for key, flag in flag_sources.items():
        if loc == key or loc.startswith(key + "."):
            source = flag
    if err["type"] == "extra_forbidden":
        return f"{source}: {loc}: unknown key"
    if err["type"] == "missing":
        return f"{source}: {loc}: required key missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{source}: {loc or '(top level)'}: {msg}{shown}"


M = TypeVar("M", bound=BaseModel)


def validate_as(model: type[M], data: dict[str, Any], source: str, flag_sources: dict[str, str] | None = None) -> M:
    """`data` as a `model`, or one line naming the file (or --set flag) and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_error(e.errors()[0], source, flag_sources or {})) from None
