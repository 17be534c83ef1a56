"""Content that breaks upscalers, as building blocks of ``compose`` scenes, and the
procedural textures they and compose's material overrides use.

Every builder takes the sequence's ``np.random.Generator``, a count and the
layout's half-size ``area`` (metres; x and z in [-area, area], y up from the
ground at 0) and returns nodes with ``object_id`` 0 (``compose`` numbers them):

- ``foliage``: bushes of crossed alpha-MASK leaf cards that sway in the wind;
- ``fences``: chain-link (alpha-MASK) panels on thin posts;
- ``thin``: wires sagging between poles and railings of thin tubes;
- ``glass``: alpha-BLEND panes and spheres, slowly turning;
- ``moire``: panels and ground tiles with a zone plate and fine stripes;
- ``signs``: emissive text signs and HUD-like panels (text, bars, a reticle);
- ``fast_spin``: fans whose blade tips move more than 32 px a frame at 960x540;
- ``disocclusion``: a ring of pillars and sliding walls in front of the layout;
- ``particles``: camera-facing sprites drifting on smooth paths (the billboard
  turns with the camera, so motion vectors come out right from the node transform).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datagen.meshes import box, cylinder, merge, plane, rgba, sphere, transformed, tube
from datagen.motion import axis_rotation
from datagen.scene import Material, Node, Texture, TransformFn, rotation_x, rotation_y, static, translation
from datagen.scenes.forest import card, card_batch, leaf_texture, sway
from datagen.scenes.racing import chain_link_texture

TEXTURES = ("checker", "stripes", "text")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# -- procedural textures ------------------------------------------------------------------


def checker(rng: np.random.Generator, size: int = 256) -> Texture:
    """A two-colour checkerboard of 4 to 32 squares a side."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    cells = int(rng.choice([4, 8, 16, 32]))
    k = np.arange(size) * cells // size
    mask = ((k[:, None] + k[None, :]) % 2 == 0)[..., None]
    return Texture(rgba(np.where(mask, a, b)))


def stripes(rng: np.random.Generator, size: int = 256) -> Texture:
    """Parallel stripes at a random angle, 6 to 40 per texture width."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    angle, count = rng.uniform(0, math.pi), int(rng.integers(6, 41))
    # an integer number of cycles along each axis keeps the texture tileable
    fx, fy = round(count * math.cos(angle)), round(count * math.sin(angle))
    on = np.sin(2 * math.pi * (fx * x + fy * y)) > 0
    return Texture(rgba(np.where(on[..., None], rng.uniform(150, 255, 3), rng.uniform(0, 90, 3))))


def text_image(rng: np.random.Generator, width: int, height: int, lines: int,
               fg=(20, 20, 20), bg=(235, 235, 225)) -> np.ndarray:
    """(height, width, 3) uint8: ``lines`` lines of random capitals and digits in Pillow's
    built-in bitmap font (deterministic: no system fonts)."""
    img = Image.new("RGB", (width, height), tuple(int(c) for c in bg))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    step = height / lines
    for i in range(lines):
        words = ["".join(rng.choice(list(LETTERS), int(rng.integers(2, 8)))) for _ in range(12)]
        colour = tuple(int(c) for c in fg)
        draw.text((4, int(i * step + step / 2 - 5)), " ".join(words), fill=colour, font=font)
    return np.asarray(img)


def text_texture(rng: np.random.Generator, size: int = 256) -> Texture:
    """Dark random text on a light panel: thin, high-contrast glyph strokes."""
    return Texture(rgba(text_image(rng, size, size, int(rng.integers(8, 20)))))


def zone_plate(size: int = 512, cycles: float = 96.0) -> Texture:
    """cos(k r^2) rings whose frequency rises to ``cycles`` per texture width at the
    edge, beside the aliasing-prone part: the classic moire test target."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    v = 0.5 + 0.5 * np.cos(2 * math.pi * cycles * (x * x + y * y))
    return Texture(rgba(np.repeat((25 + 215 * v)[..., None], 3, -1)))


def procedural(kind: str, rng: np.random.Generator) -> Texture:
    """One of ``TEXTURES`` drawn from ``rng``."""
    return {"checker": checker, "stripes": stripes, "text": text_texture}[kind](rng)


def hud_texture(rng: np.random.Generator, width: int = 256, height: int = 128) -> Texture:
    """A HUD-like panel: bright text on black, level bars and a reticle."""
    px = text_image(rng, width, height, 6, fg=(90, 255, 140), bg=(0, 0, 0)).copy()
    for i in range(4):
        fill = int(rng.uniform(0.2, 1.0) * (width // 2 - 8))
        y0 = height - 12 - 8 * i
        px[y0:y0 + 4, width // 2:width // 2 + fill] = (255, 200, 60)
    cx, cy = width // 4, height // 2
    px[cy - 1:cy + 1, cx - 20:cx + 20] = (255, 60, 60)
    px[cy - 20:cy + 20, cx - 1:cx + 1] = (255, 60, 60)
    return Texture(rgba(px), wrap="clamp")


def disc_texture(size: int = 32) -> Texture:
    """A white disc, alpha 0 outside: a particle sprite."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    inside = np.hypot(x, y) < 0.45
    return Texture(rgba(np.full((size, size, 3), 255.0), np.where(inside, 255, 0)), wrap="clamp")


# -- builders -----------------------------------------------------------------------------


def _spot(rng: np.random.Generator, area: float, margin: float = 0.5) -> np.ndarray:
    x, z = rng.uniform(-area + margin, area - margin, 2)
    return np.array([x, 0.0, z])


def foliage(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    mat = Material(base_color_texture=leaf_texture(rng), roughness=0.6, alpha_mode="MASK", alpha_cutoff=0.5,
                   double_sided=True)
    nodes = []
    for i in range(count):
        crown = rng.uniform(0.6, 1.6)
        cards = 24
        centres = rng.normal(0, 0.35 * crown, (cards, 3)) + (0.0, crown, 0.0)
        leaves = card_batch(centres, np.full((cards, 2), 0.7 * crown), rng.uniform(0, math.pi, cards),
                            rng.uniform(-0.6, 0.6, cards), centred=True)
        place = translation(_spot(rng, area))
        wind = sway(np.zeros(3), math.radians(rng.uniform(2.0, 5.0)), rng.uniform(0.4, 1.0),
                    rng.uniform(0, 2 * math.pi))
        nodes.append(Node(f"bush{i}", lambda t, p=place, w=wind: p @ w(t), leaves, mat))
    return nodes


def fences(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    mesh_mat = Material(base_color_texture=chain_link_texture(), roughness=0.4, metallic=0.8,
                        alpha_mode="MASK", double_sided=True)
    post_mat = Material(base_color=(0.3, 0.3, 0.32, 1.0), metallic=0.9, roughness=0.35)
    nodes = []
    for i in range(count):
        length, height = rng.uniform(3.0, 5.0), rng.uniform(1.5, 2.2)
        panel = transformed(plane(length, height, (length / 1.5, height / 1.5)),
                            translation((0, height / 2, 0)) @ rotation_x(math.pi / 2))
        xs = np.linspace(-length / 2, length / 2, 4)
        posts = merge([tube((x, 0, 0), (x, height, 0), 0.03, 6) for x in xs])
        place = static(translation(_spot(rng, area, 1.0)) @ rotation_y(rng.uniform(0, math.pi)))
        nodes += [Node(f"fence{i}", place, panel, mesh_mat), Node(f"fence{i}.posts", place, posts, post_mat)]
    return nodes


def thin(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    metal = Material(base_color=(0.2, 0.2, 0.22, 1.0), metallic=1.0, roughness=0.3)
    wire = Material(base_color=(0.05, 0.05, 0.05, 1.0), roughness=0.5)
    nodes = []
    for i in range(count):
        # two poles with three sagging wires
        span, height = rng.uniform(4.0, 7.0), rng.uniform(3.0, 4.5)
        poles = merge([tube((x, 0, 0), (x, height, 0), 0.06, 8) for x in (-span / 2, span / 2)])
        xs = np.linspace(-span / 2, span / 2, 17)
        lines = []
        for k, dz in enumerate((-0.3, 0.0, 0.3)):
            y = height - 0.1 - 0.1 * k - 0.4 * (1 - (2 * xs / span) ** 2)
            pts = np.stack([xs, y, np.full_like(xs, dz)], -1)
            lines += [tube(a, b, 0.008, 4) for a, b in zip(pts[:-1], pts[1:], strict=True)]
        place = translation(_spot(rng, area, 1.0)) @ rotation_y(rng.uniform(0, math.pi))
        nodes += [Node(f"poles{i}", static(place), poles, metal),
                  Node(f"wires{i}", static(place), merge(lines), wire)]
        # a railing: posts every 0.5 m, two thin rails
        length = rng.uniform(3.0, 5.0)
        xs = np.arange(-length / 2, length / 2 + 1e-6, 0.5)
        parts = [tube((x, 0, 0), (x, 1.0, 0), 0.015, 5) for x in xs]
        parts += [tube((-length / 2, y, 0), (length / 2, y, 0), 0.012, 5) for y in (0.5, 1.0)]
        place = translation(_spot(rng, area, 1.0)) @ rotation_y(rng.uniform(0, math.pi))
        nodes.append(Node(f"railing{i}", static(place), merge(parts), metal))
    return nodes


def glass(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    nodes = []
    for i in range(count):
        tint = rng.uniform(0.6, 1.0, 3)
        mat = Material(base_color=(*tint, float(rng.uniform(0.15, 0.35))), roughness=0.05, alpha_mode="BLEND",
                       double_sided=True)
        if i % 2 == 0:
            w, h = rng.uniform(1.0, 2.0), rng.uniform(1.2, 2.2)
            mesh = transformed(box((w, h, 0.03)), translation((0, h / 2, 0)))
        else:
            r = rng.uniform(0.35, 0.7)
            mesh = transformed(sphere(r, 16, 32), translation((0, r, 0)))
        place = translation(_spot(rng, area))
        omega = rng.uniform(0.2, 0.6) * rng.choice([-1, 1])
        nodes.append(Node(f"glass{i}", lambda t, p=place, w=omega: p @ rotation_y(w * t), mesh, mat))
    return nodes


def moire(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    plate = Material(base_color_texture=zone_plate(), roughness=0.7)
    fine = Material(base_color_texture=Texture(rgba(np.repeat(
        np.where(np.arange(512) % 4 < 2, 230.0, 25.0)[None, :, None], 512, 0).repeat(3, -1))), roughness=0.7)
    nodes = []
    for i in range(count):
        w, h = rng.uniform(2.0, 3.5), rng.uniform(1.5, 2.5)
        wall = transformed(plane(w, h), translation((0, h / 2 + 0.3, 0)) @ rotation_x(math.pi / 2))
        place = translation(_spot(rng, area, 1.0)) @ rotation_y(rng.uniform(0, 2 * math.pi))
        nodes.append(Node(f"moire_wall{i}", static(place), wall, plate if i % 2 == 0 else fine))
        tile = transformed(plane(3.0, 3.0), translation((0, 0.005, 0)))  # on the ground: grazing views
        nodes.append(Node(f"moire_floor{i}", static(translation(_spot(rng, area, 1.5))), tile,
                          fine if i % 2 == 0 else plate))
    return nodes


def signs(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    post = Material(base_color=(0.25, 0.25, 0.25, 1.0), metallic=0.8, roughness=0.4)
    nodes = []
    for i in range(count):
        hud = i % 2 == 1
        tex = hud_texture(rng) if hud else Texture(rgba(text_image(
            rng, 256, 128, 4, fg=rng.uniform(180, 255, 3), bg=rng.uniform(0, 60, 3))), wrap="clamp")
        glow = float(rng.uniform(2.0, 5.0))
        mat = Material(base_color=(0.05, 0.05, 0.05, 1.0), emissive=(glow, glow, glow), emissive_texture=tex,
                       base_color_texture=tex, roughness=0.3)
        w = rng.uniform(1.2, 2.4)
        h, y0 = w / 2, rng.uniform(1.0, 2.0)
        face = card(w, h)
        face = transformed(face, translation((0, y0, 0.03)))
        back = transformed(box((w + 0.06, h + 0.06, 0.05)), translation((0, y0 + h / 2, 0)))
        legs = merge([tube((x, 0, 0), (x, y0, 0), 0.04, 6) for x in (-w / 3, w / 3)])
        place = translation(_spot(rng, area, 1.0)) @ rotation_y(rng.uniform(0, 2 * math.pi))
        nodes += [Node(f"sign{i}", static(place), face, mat), Node(f"sign{i}.frame", static(place),
                                                                    merge([back, legs]), post)]
    return nodes


def fast_spin(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    """Fans of 3 or 4 blades (0.9 m long) at 4-6 turns a second about a horizontal axis:
    the tips move 0.75-1.1 m a frame at 30 fps, over 32 px at 960x540 from 10 m."""
    blade_mat = Material(base_color=(0.9, 0.85, 0.2, 1.0), roughness=0.4)
    stand_mat = Material(base_color=(0.2, 0.2, 0.22, 1.0), metallic=0.9, roughness=0.35)
    nodes = []
    for i in range(count):
        blades = int(rng.integers(3, 5))
        hub_h = 1.4
        rotor = merge([transformed(box((0.9, 0.22, 0.03)), axis_rotation((0, 0, 1), 2 * math.pi * k / blades)
                                   @ translation((0.5, 0, 0))) for k in range(blades)])
        hub = transformed(cylinder(0.12, 0.15, 12), translation((0, hub_h, -0.15)) @ rotation_x(math.pi / 2))
        stand = merge([tube((0, 0, 0), (0, hub_h, 0), 0.05, 8), hub])
        place = translation(_spot(rng, area, 1.0)) @ rotation_y(rng.uniform(0, 2 * math.pi))
        omega = 2 * math.pi * rng.uniform(4.0, 6.0) * rng.choice([-1, 1])
        phase = rng.uniform(0, 2 * math.pi)
        hub_place = place @ translation((0, hub_h, 0.05))

        def spin(t: float, p=hub_place, w=omega, f=phase) -> np.ndarray:
            return p @ axis_rotation((0.0, 0.0, 1.0), w * t + f)

        nodes += [Node(f"fan{i}", spin, rotor, blade_mat),
                  Node(f"fan{i}.stand", static(place), stand, stand_mat)]
    return nodes


def disocclusion(rng: np.random.Generator, count: int, area: float) -> list[Node]:
    """``count`` pillars on a ring just outside the layout (between it and the camera), every
    third one a wall panel sliding sideways: the camera's motion uncovers what they hide."""
    mat = Material(base_color=(0.55, 0.5, 0.45, 1.0), roughness=0.8)
    wall_mat = Material(base_color=(0.2, 0.35, 0.6, 1.0), roughness=0.5)
    nodes = []
    phase0 = rng.uniform(0, 2 * math.pi)
    for i in range(count):
        a = phase0 + 2 * math.pi * i / max(count, 1) + rng.uniform(-0.1, 0.1)
        r = area * rng.uniform(1.05, 1.25)
        pos = np.array([r * math.sin(a), 0.0, r * math.cos(a)])
        if i % 3 == 2:
            w = rng.uniform(1.0, 2.0)
            mesh = transformed(box((w, 2.2, 0.1)), translation((0, 1.1, 0)))
            swing, omega = rng.uniform(0.5, 1.2), rng.uniform(0.8, 1.6)
            tangent = np.array([math.cos(a), 0.0, -math.sin(a)])
            def move(t: float, p=pos, d=tangent, s=swing, w=omega, y=a) -> np.ndarray:
                return translation(p + d * s * math.sin(w * t)) @ rotation_y(y)

            nodes.append(Node(f"slider{i}", move, mesh, wall_mat))
        else:
            mesh = cylinder(rng.uniform(0.1, 0.25), rng.uniform(2.5, 4.0), 12)
            nodes.append(Node(f"pillar{i}", static(translation(pos)), mesh, mat))
    return nodes


def particles(rng: np.random.Generator, count: int, area: float, view: TransformFn) -> list[Node]:
    """``count`` sprites (alpha-MASK discs, emissive) on Lissajous paths inside the layout,
    each quad turned to face the camera of ``view`` at every t."""
    quad = card(1.0, 1.0, centred=True)
    sprite = disc_texture()
    cache: dict[float, np.ndarray] = {}

    def camera_to_world(t: float) -> np.ndarray:
        """inv(view(t)), computed once per t for all sprites (a few times are kept)."""
        if t not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[t] = np.linalg.inv(view(t))
        return cache[t]

    nodes = []
    for i in range(count):
        colour = rng.uniform(0.3, 1.0, 3)
        mat = Material(base_color=(*colour, 1.0), emissive=tuple(float(c) * 2.0 for c in colour),
                       base_color_texture=sprite, alpha_mode="MASK", double_sided=True, roughness=0.9)
        centre = _spot(rng, area) + (0.0, rng.uniform(0.5, 3.0), 0.0)
        amp = rng.uniform(0.2, 1.2, 3)
        freq = rng.uniform(0.2, 1.0, 3) * 2 * math.pi
        phase = rng.uniform(0, 2 * math.pi, 3)
        size = rng.uniform(0.08, 0.25)

        def billboard(t: float, c=centre, a=amp, f=freq, p=phase, s=size) -> np.ndarray:
            pos = c + a * np.sin(f * t + p)
            cam_to_world = camera_to_world(t)
            m = np.eye(4)
            m[:3, :3] = cam_to_world[:3, :3] * s  # the quad's +z faces the camera
            m[:3, 3] = pos
            return m

        nodes.append(Node(f"particle{i}", billboard, quad, mat))
    return nodes


BUILDERS = {"foliage": foliage, "fences": fences, "thin": thin, "glass": glass, "moire": moire,
            "signs": signs, "fast_spin": fast_spin, "disocclusion": disocclusion}
"""Hard cases placed independently of the camera; ``particles`` (which need it) is apart."""
