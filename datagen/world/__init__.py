"""Procedural 3D world: seeded multi-subject scenes and an Open3D ray-cast renderer.

A CPU stand-in for prompt + text-to-image generation that also yields exact ground truth
(instance masks, z-depth, oriented 3D boxes).
"""

from .render import RenderResult, render_identity, render_scene
from .scene import WorldConfig, sample_scene, scene_prompt
from .vocab import BACKGROUNDS, COLOURS, SHAPES, TEXTURES

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
