"""datagen: build SIGMA-SET27K-style multi-subject datasets and train on them.

The repository keeps stages/, configs/, data_cards/ and cli.py at its top level, the layout
users asked for; `datagen/stages`, `datagen/configs`, `datagen/data_cards` and `datagen/cli.py`
are links to them, so `datagen.stages` and `datagen.cli` resolve in a checkout, in an editable
install and for static readers alike, and a wheel carries them as real files (pyproject.toml, [tool.hatch.build]).
"""

__version__ = "0.1.0"
