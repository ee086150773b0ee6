"""Wheel build hook: install the top-level stages/, configs/, data_cards/ and cli.py as
datagen.stages, datagen.configs, datagen.data_cards and datagen.cli.

Only for regular wheels: an editable install leaves them in the checkout, where
datagen/__init__.py finds them (copying them would shadow the live sources).
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MAPPED = {"cli.py": "datagen/cli.py", "stages": "datagen/stages", "configs": "datagen/configs", "data_cards": "datagen/data_cards"}


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "standard":
            build_data["force_include"].update(MAPPED)
