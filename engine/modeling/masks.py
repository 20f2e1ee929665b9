"""Masks like users paint, on the token grid, for transformer training.

MAGE masks random token positions; an editor's user paints one contiguous hole (a blob, a box
around an object, brush strokes) and the model must continue the surroundings into it. These
shapes are drawn at 4x the token grid's resolution and a token is masked when the shape touches
it (the editor's rule at coverage 0). `masking_noise` turns a batch of such masks into the
per-position noise that `MAGE.forward_train` ranks: the painted tokens come first, then the
tokens around them nearest first (the editor also regenerates a ring around the hole), so any
token count asked for stays one contiguous region.

Every draw comes from the torch.Generator passed in, so a training step's masks depend only on
(seed, step).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("blob", "box", "strokes", "object")
SUPERSAMPLE = 4  # shapes are drawn on a grid this many times finer than the tokens


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _coords(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [0, 1] of a side x side canvas, (y, x)."""
    t = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    return t[:, None].expand(side, side), t[None, :].expand(side, side)


def box(g: torch.Generator, side: int, area: float) -> torch.Tensor:
    """One rectangle of about `area` (fraction of the canvas), aspect 1:2..2:1."""
    aspect = math.exp(_u(g, -math.log(2), math.log(2)))
    h = min(1.0, math.sqrt(area * aspect))
    w = min(1.0, area / max(h, 1e-6))
    y0, x0 = _u(g, 0, 1 - h), _u(g, 0, 1 - w)
    yy, xx = _coords(side)
    return (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)


def blob(g: torch.Generator, side: int, area: float, harmonics: int = 4) -> torch.Tensor:
    """A star-shaped blob with a wavy outline, of about `area`, anywhere it fits."""
    phases = torch.rand(harmonics, generator=g) * 2 * math.pi
    amps = torch.rand(harmonics, generator=g) * 0.25 / torch.arange(1, harmonics + 1)
    r0 = math.sqrt(area / math.pi)
    cy, cx = _u(g, r0 * 0.6, 1 - r0 * 0.6), _u(g, r0 * 0.6, 1 - r0 * 0.6)
    yy, xx = _coords(side)
    angle = torch.atan2(yy - cy, xx - cx)
    k = torch.arange(1, harmonics + 1, dtype=torch.float32)
    waves = torch.cos(k[:, None, None] * angle + phases[:, None, None])
    wobble = (amps[:, None, None] * waves).sum(0)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= (r0 * (1 + wobble)) ** 2


def obj(g: torch.Generator, side: int, area: float) -> torch.Tensor:
    """An object-sized hole: a large upright ellipse (taller or wider) near the centre."""
    aspect = math.exp(_u(g, -0.7, 0.7))
    ry = math.sqrt(area / math.pi * aspect)
    rx = area / math.pi / max(ry, 1e-6)
    cy, cx = _u(g, 0.35, 0.65), _u(g, 0.3, 0.7)
    yy, xx = _coords(side)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def strokes(g: torch.Generator, side: int, area: float) -> torch.Tensor:
    """Brush strokes: wandering lines of round brush dabs, as wide as 0.05-0.15 of the side,
    each 10-40 dabs long, drawn until about `area` is covered."""
    yy, xx = _coords(side)
    out = torch.zeros(side, side, dtype=torch.bool)
    radius = _u(g, 0.025, 0.075)
    for _ in range(12):
        y, x = _u(g, 0.1, 0.9), _u(g, 0.1, 0.9)
        heading = _u(g, 0, 2 * math.pi)
        for _ in range(10 + int(_u(g) * 30)):
            out |= (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
            if out.float().mean() >= area:
                return out
            heading += _u(g, -0.6, 0.6)
            y, x = y + math.sin(heading) * radius, x + math.cos(heading) * radius
            if not (0 <= y <= 1 and 0 <= x <= 1):  # the brush left the picture: turn back
                heading += math.pi
                y, x = min(max(y, 0.0), 1.0), min(max(x, 0.0), 1.0)
    return out


SHAPES = {"blob": blob, "box": box, "strokes": strokes, "object": obj}


def user_mask(g: torch.Generator, grid: int, area: float, kind: str) -> torch.Tensor:
    """(grid, grid) bool token mask of one painted shape of about `area` of the image; never
    empty (a shape that falls between tokens still masks the token under its centre)."""
    side = grid * SUPERSAMPLE
    fine = SHAPES[kind](g, side, area)
    tokens = F.max_pool2d(fine[None, None].float(), SUPERSAMPLE)[0, 0] > 0
    if not tokens.any():
        tokens[grid // 2, grid // 2] = True
    return tokens


def user_masks(
    g: torch.Generator, batch: int, grid: int, area: float
) -> tuple[torch.Tensor, list[str]]:
    """A batch of painted token masks (B, grid, grid) of about `area` of the image each, every
    one of a random kind; also returns the kinds."""
    masks, kinds = [], []
    for _ in range(batch):
        kind = KINDS[int(torch.randint(len(KINDS), (), generator=g))]
        masks.append(user_mask(g, grid, area, kind))
        kinds.append(kind)
    return torch.stack(masks), kinds


def painted_batch(
    g: torch.Generator, batch: int, grid: int, area: tuple[float, float] = (0.05, 0.5)
) -> tuple[float, torch.Tensor]:
    """One training step's painted masking: (mask ratio, noise (B, grid*grid)) for
    `MAGE.forward_train`. The area is drawn once for the batch (the ratio is one number per
    step), the ratio is the masks' mean token coverage."""
    masks, _ = user_masks(g, batch, grid, _u(g, *area))
    ratio = float(masks.flatten(1).float().mean())
    return ratio, masking_noise(masks, g)


def distance_to(mask: torch.Tensor) -> torch.Tensor:
    """Chessboard distance in tokens of every position to the nearest masked one (0 inside).
    (B,h,w) bool -> (B,h,w) float"""
    _b, h, w = mask.shape
    dist = torch.where(mask, 0.0, float(h + w))
    grown = mask.float()[:, None]
    for d in range(1, max(h, w)):
        grown = F.max_pool2d(grown, 3, 1, 1)
        ring = (grown[:, 0] > 0) & (dist > d)
        if not ring.any():
            break
        dist = torch.where(ring, float(d), dist)
    return dist


def masking_noise(mask: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Noise (B, h*w) in [0, 1) whose ascending order lists the painted tokens first (in
    random order), then the others by distance to the painting, nearest first: masking the
    k lowest keeps one contiguous hole (shrunk at random inside, or grown as a ring)."""
    b, h, w = mask.shape
    u = torch.rand(b, h * w, generator=g)
    dist = distance_to(mask).flatten(1)
    return torch.where(dist == 0, 0.5 * u, 0.5 + 0.5 * (dist - 1 + u) / (h + w))
