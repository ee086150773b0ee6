"""Procedural 3D world: seeded multi-subject scenes and an Open3D ray-cast renderer.

A CPU stand-in for prompt + text-to-image generation that also yields exact ground truth
(instance masks, z-depth, oriented 3D boxes).
"""

from typing import TYPE_CHECKING

from .scene import WorldConfig, sample_scene, scene_prompt
from .vocab import BACKGROUNDS, COLOURS, SHAPES, TEXTURES

if TYPE_CHECKING:
    from .render import RenderResult, render_identity, render_scene

_RENDER = ("RenderResult", "render_identity", "render_scene")


def __getattr__(name: str):
    # The renderer needs Open3D (~2 s to import): load it on first use, so reading a config
    # (which holds WorldConfig) stays cheap.
    if name in _RENDER:
        from . import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "RenderResult",
    "SHAPES",
    "TEXTURES",
    "WorldConfig",
    "render_identity",
    "render_scene",
    "sample_scene",
    "scene_prompt",
]
