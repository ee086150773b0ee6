"""Files datagen ships beside its code: the bundled configs and the data-card templates.

In a checkout (and an editable install) `datagen/configs` and `datagen/data_cards` are links to
the repository's top-level folders; a wheel carries copies there."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    candidate = PACKAGE_DIR / name
    if not candidate.is_dir():
        raise FileNotFoundError(f"datagen resource directory {name!r} is missing from the installation")
    return candidate


def bundled_config_dir() -> Path:
    return _resource_dir("configs")


def data_cards_dir() -> Path:
    return _resource_dir("data_cards")
