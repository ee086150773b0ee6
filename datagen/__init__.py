"""datagen: build SIGMA-SET27K-style multi-subject datasets and train on them."""

from pathlib import Path as _Path

__version__ = "0.1.0"

# The repository keeps stages/, configs/, data_cards/ and cli.py at its top level, the layout
# users asked for; an installed wheel carries them inside this package (pyproject.toml maps
# them there). In a source checkout or an editable install they sit one level up, so let the
# package find them there too: `datagen.stages`, `datagen.cli` work the same either way.
_checkout = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "cli.py").exists() and (_checkout / "cli.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 - __path__ is defined for packages
