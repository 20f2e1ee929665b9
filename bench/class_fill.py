#!/usr/bin/env python3
"""Does "fill as class" show the class? The model's own recognition head judges.

    nice python bench/class_fill.py [--model DIR] [--data bench/data/removal] [--limit N]
        [--classes 3] [--seed 0] [--config SPEC ...] [--budget 280] [--sheet docs/x.jpg]

For every held-out removal case (bench/removal_set.py) the plain removal (the editor's default
settings) is run once, and the head (the bundle's first head, as `main.py classify` uses it)
ranks the classes on the edit's context square. `--classes` target classes are picked per case
among those that are *not* the head's top class on the plain removal (seeded by --seed and the
case), and each is filled as class with the same seed. A case counts as shown when the chosen
class's probability is higher on the class fill's square than on the plain removal's; the rank
(1 = top) is compared too. The in-mask difference is the mean absolute difference (grey levels,
0-255, averaged over channels and the mask's pixels) between the class fill and the plain
removal.

`--config` takes comma-separated key=value settings for the class fills (several configs are
compared on the same cases and classes): ``guidance`` (classifier-free guidance), ``weight``
(the built-in synthesis's guide weight for class fills), ``layout`` (the texture stage's
``guide_layout`` radius for class fills; 0: off), ``library`` (on|off: the PyPatchMatch
library for class fills), ``texture`` (photo|model|classic),
``ring``, ``temperature`` (choice temperature), ``sample`` (sampling temperature),
``colour`` and ``seamless`` (on|off: the colour match and the seamless blend), ``context``
(context square side over the mask's box side; the head always sees the removal's square) and
``default`` (the settings a "Fill as class" run uses today; the other keys override them;
without it the guidance is 0 unless given).

Every edit is cached under bench/out/class_fill/cache (keyed by case, seed, class and config),
so a rerun or a longer run picks up where the last one stopped. Cases are taken in order, all
configs of one case before the next (interleaved), until --budget seconds have passed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.removal_set import DEFAULT_DIR, Case, load_cases  # noqa: E402
from engine.runtime import settings as settings_module  # noqa: E402
from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.recognition import bundle_head, image_features  # noqa: E402
from engine.runtime.runs import edit_image, plan_or_raise  # noqa: E402
from engine.runtime.settings import Settings  # noqa: E402

CACHE = REPO / "bench" / "out" / "class_fill" / "cache"
KEYS = (
    "default",
    "guidance",
    "weight",
    "layout",
    "library",
    "texture",
    "ring",
    "temperature",
    "sample",
    "colour",
    "seamless",
    "context",
)


def parse_config(spec: str) -> dict:
    """'guidance=3,weight=16' -> {'guidance': 3.0, 'weight': 16.0}; bad keys: one line."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, value = item.partition("=")
        if key not in KEYS:
            raise SystemExit(f"--config: unknown key {key!r} (keys: {', '.join(KEYS)})")
        if key == "default":
            out[key] = True
        elif key == "texture":
            out[key] = value
        elif key in ("colour", "seamless", "library"):
            out[key] = value in ("1", "on", "yes", "true")
        elif key in ("ring", "layout"):
            out[key] = _number(int, key, value)
        else:
            out[key] = _number(float, key, value)
    return out


def _number(kind, key: str, value: str):
    try:
        return kind(value)
    except ValueError:
        raise SystemExit(f"--config: {key}={value!r} is not a number") from None


def class_settings(config: dict, class_name: str, seed: int) -> Settings:
    # "default": what a Fill as class run uses (guidance None = the class-run default)
    base = Settings(
        seeds=(seed,), class_name=class_name, guidance=None if config.get("default") else 0.0
    )
    changes: dict = {}
    if "guidance" in config:
        changes["guidance"] = config["guidance"]
    if "texture" in config:
        changes["texture"] = config["texture"]
    if "ring" in config:
        changes["ring"] = config["ring"]
    if "temperature" in config:
        changes["temperature"] = config["temperature"]
    if "sample" in config:
        changes["sample_temperature"] = config["sample"]
    if "context" in config:
        changes["context"] = config["context"]
    if "colour" in config:
        changes["colour_match"] = config["colour"]
    if "seamless" in config:
        changes["seamless"] = config["seamless"]
    return replace(base, **changes)


def texture_changes(config: dict) -> dict:
    """The config's changes to the class fills' texture options (CLASS_TEXTURE)."""
    names = {"weight": "guide_weight", "layout": "guide_layout", "library": "native"}
    return {field: config[key] for key, field in names.items() if key in config}


def _run(bundle: Bundle, case: Case, settings: Settings, changes: dict) -> np.ndarray:
    if not changes:
        return edit_image(bundle, case.input, case.mask, settings).images[0]
    saved = settings_module.CLASS_TEXTURE
    settings_module.CLASS_TEXTURE = replace(saved, **changes)
    try:
        return edit_image(bundle, case.input, case.mask, settings).images[0]
    finally:
        settings_module.CLASS_TEXTURE = saved


def cached_edit(
    bundle: Bundle, case: Case, settings: Settings, changes: dict, tag: str
) -> np.ndarray:
    key = hashlib.sha256(
        json.dumps(
            [
                bundle.name,
                case.id,
                repr(settings),
                changes,
                tag,
                # the texture options the run uses by default (class runs: CLASS_TEXTURE)
                repr(settings.texture_options),
                # the class-run guidance a Settings with guidance None resolves to
                settings_module.CLASS_GUIDANCE if settings.class_name else 0,
            ]
        ).encode()
    ).hexdigest()[:20]
    path = CACHE / f"{case.id}-{key}.png"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))
    rgb = _run(bundle, case, settings, changes)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(rgb).save(tmp)
    tmp.replace(path)
    return rgb


def context_square(bundle: Bundle, case: Case, rgb: np.ndarray) -> np.ndarray:
    """The edit's (first) context square, clipped to the image: what the model filled from."""
    plan = plan_or_raise(bundle.manifest, case.input, case.mask, Settings())
    h, w = case.mask.shape
    x0, y0, x1, y1 = plan.parts[0].square.clip(w, h)
    return rgb[y0:y1, x0:x1]


def targets(probs: np.ndarray, count: int, seed: int, index: int) -> list[int]:
    """`count` classes other than the top one, picked at random (seeded per case)."""
    others = [int(i) for i in np.argsort(-probs)[1:]]
    rng = np.random.default_rng([seed, index])
    return sorted(int(i) for i in rng.choice(others, size=min(count, len(others)), replace=False))


def rank_of(probs: np.ndarray, cls: int) -> int:
    return int((probs > probs[cls]).sum()) + 1


def outline(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    img = Image.fromarray(rgb).convert("RGB")
    edge = mask & ~(
        np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
    )
    px = np.asarray(img).copy()
    px[edge] = (255, 40, 200)
    return Image.fromarray(px)


def sheet(rows: list[tuple[Case, np.ndarray, np.ndarray, str]], path: Path, tile: int) -> None:
    """Per row: the input with the mask outlined, the plain removal, the class fill (labelled)."""
    pad, label = 4, 16
    width = 3 * tile + 4 * pad
    height = len(rows) * (tile + label + pad) + pad
    out = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for r, (case, plain, filled, name) in enumerate(rows):
        y = pad + r * (tile + label + pad)
        tiles = [
            (outline(case.input, case.mask), f"{case.id[:24]}"),
            (Image.fromarray(plain), "plain removal"),
            (Image.fromarray(filled), f"fill as '{name}'"),
        ]
        for c, (img, text) in enumerate(tiles):
            x = pad + c * (tile + pad)
            out.paste(img.resize((tile, tile), Image.Resampling.LANCZOS), (x, y + label))
            draw.text((x + 2, y + 2), text, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path, quality=85)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--limit", type=int, default=None, help="first N cases")
    ap.add_argument("--skip", type=int, default=0, help="skip the first N cases")
    ap.add_argument("--classes", type=int, default=3, help="target classes per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", action="append", default=None, help="see the module docstring")
    ap.add_argument("--budget", type=float, default=280.0, help="stop taking cases after (s)")
    ap.add_argument("--sheet", type=Path, default=None, help="write a labelled sheet (JPEG)")
    ap.add_argument("--sheet-rows", type=int, default=8)
    ap.add_argument("--tile", type=int, default=160)
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args(argv)

    configs = [(spec, parse_config(spec)) for spec in (args.config or ["default"])]
    bundle = Bundle(args.model or default_bundle_path())
    if bundle.manifest.null_class_id is None and any(c.get("guidance") for _, c in configs):
        print("note: this model has no null class, so guidance cannot be used", file=sys.stderr)
    head = bundle_head(bundle)
    names = list(head.class_names)
    cases = load_cases(args.data)[args.skip :]
    if args.limit is not None:
        cases = cases[: args.limit]

    def classify(images: list[np.ndarray]) -> np.ndarray:
        return head.predict_proba(image_features(bundle, images))

    stats: dict[str, dict[str, list[float]]] = {
        spec: {"prob_up": [], "rank_up": [], "rank_down": [], "diff": []} for spec, _ in configs
    }
    rows: dict[str, list] = {spec: [] for spec, _ in configs}
    started = time.monotonic()
    done = 0
    for index, case in enumerate(cases, start=args.skip):
        if time.monotonic() - started > args.budget:
            print(f"budget spent after {done} cases", file=sys.stderr)
            break
        plain = cached_edit(bundle, case, Settings(seeds=(args.seed,)), {}, "plain")
        plain_probs = classify([context_square(bundle, case, plain)])[0]
        chosen = targets(plain_probs, args.classes, args.seed, index)
        for spec, config in configs:
            fills = []
            for cls in chosen:
                s = class_settings(config, names[cls], args.seed)
                fills.append(cached_edit(bundle, case, s, texture_changes(config), spec))
            probs = classify([context_square(bundle, case, f) for f in fills])
            for cls, fill, p in zip(chosen, fills, probs, strict=True):
                st = stats[spec]
                st["prob_up"].append(bool(p[cls] > plain_probs[cls]))
                st["rank_up"].append(rank_of(p, cls) < rank_of(plain_probs, cls))
                st["rank_down"].append(rank_of(p, cls) > rank_of(plain_probs, cls))
                d = np.abs(fill.astype(np.int16) - plain.astype(np.int16)).mean(-1)
                st["diff"].append(float(d[case.mask].mean()))
                if len(rows[spec]) < args.sheet_rows and cls == chosen[0]:
                    rows[spec].append((case, plain, fill, names[cls]))
        done += 1
        line = "  ".join(f"[{spec}] {np.mean(stats[spec]['prob_up']):.0%}" for spec, _ in configs)
        print(f"{case.id}: {line}  ({time.monotonic() - started:.0f} s)", file=sys.stderr)

    summary: dict[str, dict[str, float]] = {}
    print(f"{done} cases x {args.classes} classes, seed {args.seed}")
    print("| config | prob. up | rank up | rank down | in-mask diff (levels) |")
    print("|---|---|---|---|---|")
    for spec, _ in configs:
        st = stats[spec]
        n = len(st["prob_up"])
        if not n:
            continue
        summary[spec] = {
            "pairs": n,
            "prob_up": float(np.mean(st["prob_up"])),
            "rank_up": float(np.mean(st["rank_up"])),
            "rank_down": float(np.mean(st["rank_down"])),
            "diff": float(np.mean(st["diff"])),
        }
        got = summary[spec]
        print(
            f"| {spec} | {got['prob_up']:.0%} | {got['rank_up']:.0%} | {got['rank_down']:.0%} "
            f"| {got['diff']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if args.sheet and rows[configs[0][0]]:
        sheet(rows[configs[0][0]], args.sheet, args.tile)
        print(f"sheet: {args.sheet}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
