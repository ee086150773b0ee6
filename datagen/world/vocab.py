"""Vocabularies of the procedural world: colours, textures, shapes and backgrounds.

Everything here is plain data so that scenes stay JSON-serialisable and captions stay stable.
Shapes are described in a unit frame (about 1 m tall, standing on z = 0, centred on the z axis);
`meshes.py` turns the part lists into triangle meshes and scales them per subject.
"""

from __future__ import annotations

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "orange": (235, 130, 30),
    "yellow": (235, 205, 40),
    "green": (50, 160, 60),
    "teal": (30, 150, 150),
    "blue": (40, 80, 200),
    "purple": (120, 60, 170),
    "pink": (235, 120, 170),
    "brown": (120, 75, 40),
    "black": (35, 35, 38),
    "white": (240, 240, 236),
    "grey": (130, 130, 135),
}

# Texture name -> adjective used in captions ("" means the caption omits it).
TEXTURES: dict[str, str] = {
    "plain": "",
    "striped": "striped",
    "checkered": "checkered",
    "dotted": "polka-dot",
    "speckled": "speckled",
}

# A part is (primitive, parameters, translation, rotation about (x, y, z) in degrees).
# A part's vertices are v' = R @ v + t. Primitives: box, cylinder, sphere (centred on the origin),
# cone (base at z = 0, tip at +z), torus (ring in the xy plane, centred); "scale" squashes a part.
Part = tuple[str, dict, tuple[float, float, float], tuple[float, float, float]]

_NO_ROT = (0.0, 0.0, 0.0)

# Shapes with a flat top another subject can stand on: half the top's narrower side, in the unit
# frame (the top's height is read from the mesh).
SUPPORT_TOPS: dict[str, float] = {"box": 0.4, "table": 0.35, "cylinder": 0.35}

SHAPES: dict[str, list[Part]] = {
    "box": [("box", {"width": 1.0, "height": 0.8, "depth": 0.8}, (0.0, 0.0, 0.4), _NO_ROT)],
    "cylinder": [("cylinder", {"radius": 0.35, "height": 1.0}, (0.0, 0.0, 0.5), _NO_ROT)],
    "sphere": [("sphere", {"radius": 0.5}, (0.0, 0.0, 0.5), _NO_ROT)],
    "cone": [("cone", {"radius": 0.4, "height": 1.0}, (0.0, 0.0, 0.0), _NO_ROT)],
    # An upright ring, like a doughnut standing on its edge.
    "torus": [("torus", {"torus_radius": 0.37, "tube_radius": 0.18}, (0.0, 0.0, 0.55), (90.0, 0.0, 0.0))],
    "mug": [
        ("cylinder", {"radius": 0.34, "height": 0.9}, (0.0, 0.0, 0.45), _NO_ROT),
        ("torus", {"torus_radius": 0.22, "tube_radius": 0.055}, (0.34, 0.0, 0.47), (90.0, 0.0, 0.0)),
    ],
    "lamp": [
        ("cylinder", {"radius": 0.25, "height": 0.06}, (0.0, 0.0, 0.03), _NO_ROT),
        ("cylinder", {"radius": 0.035, "height": 0.7}, (0.0, 0.0, 0.38), _NO_ROT),
        ("cone", {"radius": 0.32, "height": 0.4}, (0.0, 0.0, 0.6), _NO_ROT),
    ],
    "table": [
        ("box", {"width": 1.0, "height": 0.7, "depth": 0.06}, (0.0, 0.0, 0.63), _NO_ROT),
        ("cylinder", {"radius": 0.04, "height": 0.6}, (0.42, 0.27, 0.3), _NO_ROT),
        ("cylinder", {"radius": 0.04, "height": 0.6}, (-0.42, 0.27, 0.3), _NO_ROT),
        ("cylinder", {"radius": 0.04, "height": 0.6}, (0.42, -0.27, 0.3), _NO_ROT),
        ("cylinder", {"radius": 0.04, "height": 0.6}, (-0.42, -0.27, 0.3), _NO_ROT),
    ],
    "snowman": [
        ("sphere", {"radius": 0.3}, (0.0, 0.0, 0.3), _NO_ROT),
        ("sphere", {"radius": 0.22}, (0.0, 0.0, 0.76), _NO_ROT),
        ("sphere", {"radius": 0.15}, (0.0, 0.0, 1.08), _NO_ROT),
        # Carrot nose: a cone turned to point along +x.
        ("cone", {"radius": 0.035, "height": 0.16}, (0.13, 0.0, 1.09), (0.0, 90.0, 0.0)),
    ],
    "rocket": [
        ("cylinder", {"radius": 0.17, "height": 0.75}, (0.0, 0.0, 0.475), _NO_ROT),
        ("cone", {"radius": 0.17, "height": 0.35}, (0.0, 0.0, 0.85), _NO_ROT),
        # Three fins around the base, each turned to point radially.
        ("box", {"width": 0.2, "height": 0.03, "depth": 0.32}, (0.22, 0.0, 0.16), _NO_ROT),
        ("box", {"width": 0.2, "height": 0.03, "depth": 0.32}, (-0.11, 0.1905, 0.16), (0.0, 0.0, 120.0)),
        ("box", {"width": 0.2, "height": 0.03, "depth": 0.32}, (-0.11, -0.1905, 0.16), (0.0, 0.0, 240.0)),
    ],
    "mushroom": [
        ("cylinder", {"radius": 0.13, "height": 0.6}, (0.0, 0.0, 0.3), _NO_ROT),
        ("sphere", {"radius": 0.46, "scale": (1.0, 1.0, 0.6)}, (0.0, 0.0, 0.63), _NO_ROT),
    ],
}

# Backgrounds: ground appearance (world-frame texture) and a sky gradient for rays that miss.
BACKGROUNDS: dict[str, dict] = {
    "beach": {
        "caption": "a sandy beach", "preposition": "on",
        "ground_colour": (222, 198, 150), "ground_texture": "speckled",
        "sky_top": (70, 130, 215), "sky_bottom": (195, 220, 240),
    },
    "wooden_floor": {
        "caption": "a wooden floor in a white room", "preposition": "on",
        "ground_colour": (150, 100, 60), "ground_texture": "planks",
        "sky_top": (236, 236, 232), "sky_bottom": (222, 222, 218),
    },
    "snowy_field": {
        "caption": "a snowy field at dusk", "preposition": "in",
        "ground_colour": (225, 228, 240), "ground_texture": "speckled",
        "sky_top": (40, 50, 105), "sky_bottom": (230, 150, 120),
    },
    "meadow": {
        "caption": "a grassy meadow", "preposition": "in",
        "ground_colour": (85, 145, 60), "ground_texture": "grass",
        "sky_top": (80, 140, 220), "sky_bottom": (205, 225, 245),
    },
    "kitchen": {
        "caption": "a tiled kitchen floor", "preposition": "on",
        "ground_colour": (205, 205, 200), "ground_texture": "tiles",
        "sky_top": (240, 232, 210), "sky_bottom": (228, 220, 198),
    },
    "parking_lot": {
        "caption": "an asphalt parking lot", "preposition": "in",
        "ground_colour": (85, 85, 90), "ground_texture": "speckled",
        "sky_top": (120, 150, 190), "sky_bottom": (210, 215, 225),
    },
    "desert": {
        "caption": "a desert at sunset", "preposition": "in",
        "ground_colour": (200, 140, 90), "ground_texture": "speckled",
        "sky_top": (90, 70, 140), "sky_bottom": (250, 170, 90),
    },
    "courtyard": {
        "caption": "a stone courtyard", "preposition": "in",
        "ground_colour": (150, 145, 135), "ground_texture": "tiles",
        "sky_top": (95, 145, 210), "sky_bottom": (210, 225, 240),
    },
}

GROUND_TEXTURES = ("plain", "speckled", "grass", "planks", "tiles")


def background_id(name: str) -> str | None:
    """Resolve a background id or caption to its id; None when unknown."""
    if name in BACKGROUNDS:
        return name
    for key, bg in BACKGROUNDS.items():
        if bg["caption"] == name:
            return key
    return None


def subject_caption(shape: str, colour: str, texture: str) -> str:
    words = " ".join(w for w in (colour, TEXTURES[texture], shape) if w)
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words}"
