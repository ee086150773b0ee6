"""One line when a package datagen patches or works around has changed shape.

datagen adapts a few third-party packages (groundingdino-py's BERT wrapper on transformers 5,
xgrammar's regex repetition bound). Each adapter checks the shape it relies on before it
runs; a shape it does not know becomes `IncompatibleDependency`, naming the package, the
version installed and the extra that installs the tested one, never a TypeError deep inside
a forward pass.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from datagen.errors import UserError

# What brings the tested versions back: the lock, or the extra for a user's own environment.
REINSTALL = "bash scripts/setup.sh installs the locked versions"


class IncompatibleDependency(UserError):
    """An installed package no longer has the shape a datagen adapter was written for."""


def installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def incompatible(package: str, extra: str, problem: str) -> IncompatibleDependency:
    """The error for `package` (a distribution name) whose installed shape datagen cannot adapt."""
    return IncompatibleDependency(
        f"{package} {installed_version(package)} is not a version datagen supports: {problem}; "
        f"reinstall it with pip install 'datagen[{extra}]' ({REINSTALL})"
    )
