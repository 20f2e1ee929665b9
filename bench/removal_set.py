"""The held-out removal set (built by bench/make_removal_set.py): truth, input and mask.

For ``box`` and ``blob`` cases the input is the truth (the mask marks what to refill); for
``paste`` cases the input is the truth with a cut-out composited on it with its alpha, and the
mask covers the cut-out with a few pixels to spare, so outside the mask input and truth agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_DIR = Path(__file__).resolve().parent / "data" / "removal"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "box" | "blob" | "paste"
    truth: np.ndarray  # uint8 [H,W,3]
    input: np.ndarray  # uint8 [H,W,3]
    mask: np.ndarray  # bool [H,W]
    meta: dict = field(default_factory=dict, compare=False)


def composite(truth: np.ndarray, obj: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """`obj` (RGBA uint8) over `truth` with its top-left corner at `at` = (x, y)."""
    out = truth.astype(np.float64)
    x, y = at
    h, w = obj.shape[:2]
    a = obj[..., 3:4].astype(np.float64) / 255
    region = out[y : y + h, x : x + w]
    out[y : y + h, x : x + w] = region * (1 - a) + obj[..., :3] * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def load_cases(
    folder: Path = DEFAULT_DIR, kinds: tuple[str, ...] | None = None, limit: int | None = None
) -> list[Case]:
    """The cases listed in `folder`/cases.json, in order; `kinds` keeps only those kinds."""
    folder = Path(folder)
    listing = folder / "cases.json"
    if not listing.is_file():
        raise FileNotFoundError(
            f"{listing} is missing: run python bench/make_removal_set.py to build the set"
        )
    cases = []
    for rec in json.loads(listing.read_text(encoding="utf-8")):
        if kinds and rec["kind"] not in kinds:
            continue
        cid = rec["id"]
        truth = np.asarray(Image.open(folder / f"{cid}.jpg").convert("RGB"))
        mask = np.asarray(Image.open(folder / f"{cid}-mask.png").convert("L")) > 127
        if mask.shape != truth.shape[:2]:
            raise ValueError(f"{cid}: mask {mask.shape} does not match the photo")
        inp = truth
        if rec["kind"] == "paste":
            obj = np.asarray(Image.open(folder / f"{cid}-object.png").convert("RGBA"))
            inp = composite(truth, obj, tuple(rec["object"]["at"]))
            if np.any(inp[~mask] != truth[~mask]):
                raise ValueError(f"{cid}: the cut-out reaches outside the mask")
        cases.append(Case(cid, rec["kind"], truth, inp, mask, rec))
        if limit is not None and len(cases) >= limit:
            break
    return cases
