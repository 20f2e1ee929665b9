#!/usr/bin/env python3
"""Object removal on the held-out removal set: our fills against classic PatchMatch and OpenCV,
scored by numbers and by a blind side-by-side judgement.

    nice python bench/eval_removal.py [--model DIR] [--data bench/data/removal]
                                      [--out bench/out/removal] [--limit N] [--seed 0]
                                      [--methods model texture patchmatch telea]
                                      [--sheet-rows 8] [--tile 192]

Methods (columns)
-----------------
* ``model``: the editor's removal, model only (today's default pipeline; with a texture
  setting in `Settings`, ``texture="model"``), seed 0.
* ``texture``: the editor's removal with the photo's texture (``texture="photo"``), seed 0.
  Skipped, with one line saying so, while `Settings` has no ``texture`` field.
* ``classic``: the editor's classic mode (``texture="classic"``, no model), when it exists.
  Not on the blind sheets (which show four fills).
* ``patchmatch``: `pypatchmatch` (PatchMatch, Barnes et al. 2009; the inpainting of
  IOPaint's classic mode), patch radius 3 (7x7 patches), its random seed set to 0. Skipped
  with one line when the package is not installed (``pip install pypatchmatch``).
* ``telea``: `cv2.inpaint` with ``INPAINT_TELEA``, radius 3.

Every method gets the same input (the photo with a pasted cut-out, or the photo itself for box
and blob masks) and the same mask, at the crop's own size.

Metrics (per case; the tables give the median or mean over cases)
----------------------------------------------------------------
* in-mask PSNR against the truth (bench/eval_quality.py `psnr`, capped at 60 dB).
* detail kept: mean |Laplacian| of the result inside the hole, its 1-px edge left out, over the
  truth's (bench/eval_quality.py `detail`); 100% = as much fine texture as the photo.
* changed outside: pixels farther than 2 px (Euclidean) from the mask whose value differs from
  the input in any channel, and the largest such change (levels).
* off-colour: the result is low-passed (Gaussian, sigma 2 px) and converted to CIELAB; a hole
  pixel is off-colour when its low-passed colour is more than 12 (Delta E 1976) from every
  low-passed colour of the known pixels (anywhere in the image; colours binned to 2 units). The
  figure is the off-colour share of the hole; a case *has a blotch* when that share is above 1%.
  The truth's own share is listed too: a hole can hold colours that appear nowhere else.
* seconds: wall-clock time of the method on this case (the machine is shared; read ratios).

Blind sheets
------------
Rows of `--sheet-rows` cases per PNG under `--out`: the input with the mask outlined, then the
methods' results in an order shuffled per row (seeded by --seed and the row), labelled A, B, C,
D; every tile is zoomed to the hole's neighbourhood. The key (which letter is which method) is
written to ``sheets-key.json`` beside them; a judge looks at the sheets only, writes a JSON of
row number -> letter (or a list of letters for a tie), and bench/judge_sheets.py un-blinds it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.eval_quality import cv2_inpaint, detail, luminance, machine, psnr  # noqa: E402
from bench.removal_set import DEFAULT_DIR, Case, load_cases  # noqa: E402
from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.runs import edit_image  # noqa: E402
from engine.runtime.settings import Settings  # noqa: E402

PSNR_CAP = 60.0
OUTSIDE_PX = 2.0  # changes farther than this from the mask count as "changed outside"
BLOTCH_DE = 12.0  # Delta E from every known colour that makes a hole pixel off-colour
BLOTCH_SIGMA = 2.0  # px, the low-pass before colours are compared
BLOTCH_BIN = 2.0  # CIELAB units per bin of the colour sets
BLOTCH_SHARE = 0.01  # off-colour share of the hole above which a case has a blotch
METHODS = ("model", "texture", "classic", "patchmatch", "telea")
SHEET_METHODS = ("model", "texture", "patchmatch", "telea")
NAMES = {
    "model": "ours, model only",
    "texture": "ours, texture from the photo",
    "classic": "ours, classic (no model)",
    "patchmatch": "PatchMatch (pypatchmatch, patch 7x7)",
    "telea": "OpenCV Telea",
}

# -- metrics ------------------------------------------------------------------------------------


def changed_outside(inp: np.ndarray, out: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(count, largest change) of pixels farther than OUTSIDE_PX from the mask that differ."""
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    far = dist > OUTSIDE_PX
    diff = np.abs(inp.astype(np.int16) - out.astype(np.int16)).max(-1)
    d = diff[far]
    return int((d > 0).sum()), int(d.max()) if d.size else 0


def _lab_lowpass(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255
    blurred = cv2.GaussianBlur(x, (0, 0), BLOTCH_SIGMA, borderType=cv2.BORDER_REFLECT)
    return cv2.cvtColor(blurred, cv2.COLOR_RGB2Lab)


def _colour_set(lab: np.ndarray) -> np.ndarray:
    """Unique binned colours (bin centres) of an [N,3] CIELAB array."""
    q = np.unique(np.floor(lab / BLOTCH_BIN).astype(np.int32), axis=0)
    return (q.astype(np.float32) + 0.5) * BLOTCH_BIN


def off_colour(out: np.ndarray, mask: np.ndarray, known: np.ndarray | None = None) -> float:
    """Share of the hole whose low-passed colour is farther than BLOTCH_DE from every
    low-passed colour of the known pixels (`known`: the image whose unmasked pixels define the
    known colours; defaults to `out`)."""
    lab = _lab_lowpass(out)
    klab = lab if known is None else _lab_lowpass(known)
    kset = _colour_set(klab[~mask])
    hole = lab[mask]
    hq, inverse = np.unique(
        np.floor(hole / BLOTCH_BIN).astype(np.int32), axis=0, return_inverse=True
    )
    hset = (hq.astype(np.float32) + 0.5) * BLOTCH_BIN
    nearest = np.empty(len(hset), np.float32)
    k2 = (kset**2).sum(1)
    for i in range(0, len(hset), 2048):
        h = hset[i : i + 2048]
        d2 = (h**2).sum(1)[:, None] + k2[None, :] - 2 * h @ kset.T
        nearest[i : i + 2048] = np.sqrt(np.maximum(d2.min(1), 0))
    # bin centres are within BLOTCH_BIN * sqrt(3) / 2 of the true colours on either side
    return float(np.mean(nearest[inverse.ravel()] > BLOTCH_DE))


def luma_bias(truth: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    """Mean luma (BT.601, 0..255) of `out` inside the hole minus the truth's: below 0 = the
    fill is darker than the photo was."""
    return float(luminance(out)[mask].mean() - luminance(truth)[mask].mean())


# -- methods ------------------------------------------------------------------------------------


def texture_setting() -> bool:
    return "texture" in {f.name for f in dataclasses.fields(Settings)}


def patchmatch_module():
    try:
        from patchmatch import patch_match
    except ImportError:
        return None
    return patch_match if patch_match.patchmatch_available else None


def make_methods(bundle: Bundle, wanted: tuple[str, ...], log) -> dict:
    """name -> fill(input, mask) -> uint8 image, for the methods that can run here."""
    methods = {}
    has_texture = texture_setting()
    base = Settings(seeds=(0,))

    def ours(settings: Settings):
        return lambda rgb, mask: np.asarray(edit_image(bundle, rgb, mask, settings).images[0])

    for name in wanted:
        if name == "model":
            methods[name] = ours(replace(base, texture="model") if has_texture else base)
        elif name in ("texture", "classic"):
            if not has_texture:
                log(f"skipping {name}: Settings has no texture field yet")
                continue
            methods[name] = ours(replace(base, texture="photo" if name == "texture" else name))
        elif name == "patchmatch":
            pm = patchmatch_module()
            if pm is None:
                log("skipping patchmatch: pypatchmatch is not installed (pip install pypatchmatch)")
                continue

            def classic_pm(rgb, mask, pm=pm):
                pm.set_random_seed(0)
                return pm.inpaint(rgb, mask.astype(np.uint8) * 255, patch_size=3)

            methods[name] = classic_pm
        elif name == "telea":
            methods[name] = lambda rgb, mask: cv2_inpaint(rgb, mask, "telea")
        else:
            raise SystemExit(f"error: unknown method {name!r} (known: {', '.join(METHODS)})")
    return methods


def evaluate(cases: list[Case], methods: dict, log) -> tuple[list[dict], dict]:
    """Per-case rows of metrics, and the results (for the sheets)."""
    rows, results = [], {}
    t0 = time.perf_counter()
    for n, case in enumerate(cases):
        row = {
            "case": case.id,
            "kind": case.kind,
            "size": int(case.truth.shape[0]),
            "hole_share": float(case.mask.mean()),
            "truth_off_colour": off_colour(case.truth, case.mask),
        }
        for name, fill in methods.items():
            t = time.perf_counter()
            out = fill(case.input, case.mask)
            seconds = time.perf_counter() - t
            if out.shape != case.input.shape or out.dtype != np.uint8:
                raise RuntimeError(f"{name} on {case.id}: got {out.shape} {out.dtype}")
            count, largest = changed_outside(case.input, out, case.mask)
            row[name] = {
                "psnr": min(psnr(case.truth, out, case.mask), PSNR_CAP),
                "detail": detail(case.truth, out, case.mask),
                "outside_changed": count,
                "outside_max": largest,
                "off_colour": off_colour(out, case.mask, case.input),
                "luma_bias": luma_bias(case.truth, out, case.mask),
                "seconds": seconds,
            }
            results[(case.id, name)] = out
        rows.append(row)
        log(f"  {n + 1}/{len(cases)} {case.id} ({time.perf_counter() - t0:.0f} s)")
    return rows, results


# -- sheets -------------------------------------------------------------------------------------


def zoom_box(mask: np.ndarray, margin: float = 0.35, min_side: int = 96) -> tuple[int, ...]:
    """Square (x0, y0, side) around the mask's bounding box plus `margin` of its side on every
    edge, inside the image."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    side = int(min(max(side * (1 + 2 * margin), min_side), h, w))
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    return x0, y0, side


def outline(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask's outline (1 px outside it) drawn in magenta."""
    m = mask.astype(np.uint8)
    ring = (cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0) & ~mask
    out = rgb.copy()
    out[ring] = (255, 0, 255)
    return out


def _tile(rgb: np.ndarray, box, tile: int) -> Image.Image:
    x0, y0, side = box
    im = Image.fromarray(np.ascontiguousarray(rgb[y0 : y0 + side, x0 : x0 + side]))
    return im.resize(
        (tile, tile), Image.Resampling.BICUBIC if side < tile else Image.Resampling.LANCZOS
    )


def _text(d: ImageDraw.ImageDraw, xy, s: str) -> None:
    x, y = xy
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        d.text((x + dx, y + dy), s, fill=(0, 0, 0))
    d.text(xy, s, fill=(255, 255, 255))


def write_sheets(
    cases: list[Case],
    results: dict,
    methods: list[str],
    out: Path,
    rows_per: int,
    tile: int,
    seed: int,
) -> list[Path]:
    """Blind sheets (PNG) and the key (sheets-key.json) in `out`."""
    letters = "ABCDEFGH"[: len(methods)]
    key_rows: dict[str, dict] = {}
    key = {
        "methods": {m: NAMES[m] for m in methods},
        "seed": seed,
        "rows": key_rows,
    }
    paths = []
    gap, head = 4, 16
    for s in range(0, len(cases), rows_per):
        chunk = cases[s : s + rows_per]
        w = (tile + gap) * (len(methods) + 1)
        sheet = Image.new("RGB", (w, head + (tile + gap) * len(chunk)), (40, 40, 40))
        d = ImageDraw.Draw(sheet)
        d.text((4, 2), "input (mask outlined)", fill=(255, 255, 255))
        for j, letter in enumerate(letters):
            d.text(((tile + gap) * (j + 1) + 4, 2), letter, fill=(255, 255, 255))
        for r, case in enumerate(chunk):
            row_no = s + r + 1
            order = list(np.random.default_rng([seed, row_no]).permutation(len(methods)))
            box = zoom_box(case.mask)
            y = head + r * (tile + gap)
            inp = _tile(outline(case.input, case.mask), box, tile)
            _text(ImageDraw.Draw(inp), (4, 4), f"row {row_no}")
            sheet.paste(inp, (0, y))
            key_rows[str(row_no)] = {
                "case": case.id,
                "sheet": f"sheet-{s // rows_per + 1}.png",
                "letters": {letters[j]: methods[i] for j, i in enumerate(order)},
            }
            for j, i in enumerate(order):
                t = _tile(results[(case.id, methods[i])], box, tile)
                _text(ImageDraw.Draw(t), (4, 4), f"{row_no}{letters[j]}")
                sheet.paste(t, ((tile + gap) * (j + 1), y))
        path = out / f"sheet-{s // rows_per + 1}.png"
        sheet.save(path, optimize=True)
        paths.append(path)
    (out / "sheets-key.json").write_text(json.dumps(key, indent=1) + "\n", encoding="utf-8")
    return paths


# -- report -------------------------------------------------------------------------------------


def summary(rows: list[dict], methods: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for m in methods:
        v = [r[m] for r in rows]
        out[m] = {
            "psnr_mean": float(np.mean([x["psnr"] for x in v])),
            "detail_median": float(np.median([x["detail"] for x in v])),
            "outside_changed_total": int(sum(x["outside_changed"] for x in v)),
            "cases_changed_outside": int(sum(x["outside_changed"] > 0 for x in v)),
            "outside_max": int(max(x["outside_max"] for x in v)),
            "off_colour_mean": float(np.mean([x["off_colour"] for x in v])),
            "luma_bias_median": float(np.median([x["luma_bias"] for x in v])),
            "luma_bias_abs_mean": float(np.mean([abs(x["luma_bias"]) for x in v])),
            "cases_with_blotch": int(sum(x["off_colour"] > BLOTCH_SHARE for x in v)),
            "seconds_median": float(np.median([x["seconds"] for x in v])),
            "seconds_256_median": float(
                np.median([x["seconds"] for x, r in zip(v, rows, strict=True) if r["size"] == 256])
                if any(r["size"] == 256 for r in rows)
                else float("nan")
            ),
        }
    return out


def table(rows: list[dict], methods: list[str]) -> list[str]:
    s = summary(rows, methods)
    truth_blotch = sum(r["truth_off_colour"] > BLOTCH_SHARE for r in rows)
    lines = [
        "| method | in-mask PSNR (mean) | detail kept (median) | px changed > 2 px outside "
        "(cases) | off-colour share (mean) | cases with a blotch | brightness vs truth (median; "
        "mean abs) | s per case (median; 256 px) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        x = s[m]
        lines.append(
            f"| {NAMES[m]} | {x['psnr_mean']:.2f} dB | {100 * x['detail_median']:.0f}% | "
            f"{x['outside_changed_total']} ({x['cases_changed_outside']}; max "
            f"{x['outside_max']} levels) | {100 * x['off_colour_mean']:.2f}% | "
            f"{x['cases_with_blotch']} of {len(rows)} | {x['luma_bias_median']:+.1f}; "
            f"{x['luma_bias_abs_mean']:.1f} levels | {x['seconds_median']:.2f} s; "
            f"{x['seconds_256_median']:.2f} s |"
        )
    lines.append(
        f"| (the truth itself) | | 100% | | "
        f"{100 * np.mean([r['truth_off_colour'] for r in rows]):.2f}% | "
        f"{truth_blotch} of {len(rows)} | 0 | |"
    )
    by_kind = [
        "",
        "| method | " + " | ".join(f"{k} PSNR / detail" for k in ("box", "blob", "paste")) + " |",
        "|---|---|---|---|",
    ]
    for m in methods:
        cells = []
        for k in ("box", "blob", "paste"):
            v = [r[m] for r in rows if r["kind"] == k]
            cells.append(
                f"{np.mean([x['psnr'] for x in v]):.2f} dB / "
                f"{100 * np.median([x['detail'] for x in v]):.0f}%"
                if v
                else "-"
            )
        by_kind.append(f"| {NAMES[m]} | " + " | ".join(cells) + " |")
    return lines + by_kind


DOC_SHEETS = "removal-blind"  # folder beside the doc for the blind sheets and their key


def doc_section(report: dict, rows: list[dict], names: list[str], sheets: list[str]) -> str:
    """The generated part of the doc's removal section."""
    n = len(rows)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("box", "blob", "paste")}
    sizes = sorted({r["size"] for r in rows})
    L = [
        "Produced by `python bench/eval_removal.py --doc docs/model-quality.md --seed "
        f"{report['sheet_seed']}` on "
        f"{report['date']} ({report['machine']}; whole run {report['seconds']:.0f} s); model "
        f"**{report['model']}**.",
        "",
        f"* data: the held-out removal set, {n} cases (`bench/data/removal`, built by "
        "`bench/make_removal_set.py` from pinned Debian and PyPI packages, licences in its "
        "`cases.json`): square crops at "
        + " and ".join(f"{s} px" for s in sizes)
        + " of photos that are not in the training pool (Tux Paint's photo templates: bark, "
        "moss, rock, sea, trees, sky, sheep, a lighthouse, a machine; a nuthatch wallpaper; "
        "scikit-image's and scikit-learn's sample photos). "
        f"{kinds['box']} *box* and {kinds['blob']} *blob* masks of 15% of the crop (the crop is "
        f"the truth), and {kinds['paste']} *pasted* cases: a photo cut-out with alpha (birds, a "
        "rabbit, a slug, a ferret, fruit, a flower, a ball, a tyre) composited onto a clean "
        "crop; the clean crop is the truth and the mask is the cut-out's footprint grown by 3 px.",
        "* methods: " + "; ".join(f"**{NAMES[m]}**" for m in names) + ". Ours uses seed 0 "
        "and the default settings otherwise; PatchMatch is `pypatchmatch` with patch radius 3 "
        "(7x7 patches), seed 0; Telea is `cv2.inpaint` radius 3.",
        "* metrics: *in-mask PSNR* against the truth; *detail kept* = mean |Laplacian| of the "
        "result inside the hole (1-px edge left out) over the truth's (100% = as much fine "
        "texture as the photo); *px changed > 2 px outside* = pixels farther than 2 px from "
        "the mask that differ from the input (cases with any, largest change); *off-colour* = "
        "share of the hole whose low-passed colour (Gaussian sigma 2 px, CIELAB) is more than "
        "Delta E 12 from every low-passed colour of the known pixels, and the cases where that "
        "share is above 1% (*a blotch*; the truth's own figure shows how often a hole really "
        "holds colours found nowhere else); *s per case*: wall-clock seconds on this shared "
        "machine, median over cases and over the 256 px cases; *brightness vs truth*: mean luma "
        "(0-255) of the result inside the hole minus the truth's, median over cases (below 0 = "
        "darker than the photo) and mean of its size.",
        "",
        *table(rows, names),
        "",
        "Blind sheets: "
        + ", ".join(f"[{Path(p).name}]({DOC_SHEETS}/{Path(p).name})" for p in sheets)
        + " (rows = the cases in `cases.json` order, the input with the mask outlined, then the "
        f"fills of {'; '.join(NAMES[m] for m in SHEET_METHODS if m in names)} shuffled per row and "
        f"labelled A-{'ABCDEFGH'[len([m for m in SHEET_METHODS if m in names]) - 1]}; every tile "
        f"zoomed to the hole's neighbourhood). The key is `{DOC_SHEETS}/sheets-key.json`; "
        "`python bench/judge_sheets.py PICKS.json --key docs/"
        f"{DOC_SHEETS}/sheets-key.json` un-blinds a judgement.",
    ]
    return "\n".join(L)


def update_doc(path: Path, generated: str) -> None:
    """Write `generated` into the <!-- REMOVAL --> section of `path`, keeping the hand-written
    judgement between <!-- REMOVAL-JUDGED --> markers (or adding an empty one)."""
    start, end = "<!-- REMOVAL -->", "<!-- /REMOVAL -->"
    j0, j1 = "<!-- REMOVAL-JUDGED -->", "<!-- /REMOVAL-JUDGED -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Model quality\n"
    judged = "Not judged yet."
    if start in text and end in text:
        body = text.split(start, 1)[1].split(end, 1)[0]
        if j0 in body and j1 in body:
            judged = body.split(j0, 1)[1].split(j1, 1)[0].strip("\n")
        head, tail = text.split(start, 1)[0], text.split(end, 1)[1]
    else:  # a doc written before the section existed: add it before the closing summary
        title = "## 4. Removal on photos outside the training pool\n\n"
        closing = "## What the numbers say"
        if closing in text:
            head = text.split(closing, 1)[0] + title
            tail = "\n\n" + closing + text.split(closing, 1)[1]
        else:
            head, tail = text.rstrip("\n") + "\n\n" + title, "\n"
    section = f"{start}\n{generated}\n\n{j0}\n{judged}\n{j1}\n{end}"
    path.write_text(head + section + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="bundle folder (default: the default bundle)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "removal")
    ap.add_argument("--limit", type=int, default=None, help="only the first N cases")
    ap.add_argument("--seed", type=int, default=0, help="the sheets' shuffle")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--sheet-rows", type=int, default=8)
    ap.add_argument("--tile", type=int, default=192)
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument(
        "--doc",
        type=Path,
        help="write the tables into this Markdown file's removal section, and the sheets (JPEG) "
        f"and their key into {DOC_SHEETS}/ beside it",
    )
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        cases = load_cases(args.data, limit=args.limit)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not cases:
        print(f"error: no cases in {args.data}", file=sys.stderr)
        return 2
    bundle = Bundle(args.model or default_bundle_path(), device=args.device)
    methods = make_methods(bundle, tuple(args.methods), log)
    if not methods:
        print("error: none of the methods can run here", file=sys.stderr)
        return 2
    log(f"{len(cases)} cases, methods: {', '.join(methods)}")
    t0 = time.perf_counter()
    rows, results = evaluate(cases, methods, log)
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(methods)
    on_sheet = [m for m in SHEET_METHODS if m in methods]
    sheets = write_sheets(cases, results, on_sheet, args.out, args.sheet_rows, args.tile, args.seed)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "model": bundle.manifest.name,
        "data": str(args.data),
        "methods": {m: NAMES[m] for m in names},
        "seconds": time.perf_counter() - t0,
        "sheet_seed": args.seed,
        "summary": summary(rows, names),
        "cases": rows,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    lines = table(rows, names)
    (args.out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if args.doc:
        folder = args.doc.parent / DOC_SHEETS
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("sheet-*.jpg"):
            old.unlink()
        published = []
        for p in sheets:
            dst = folder / (p.stem + ".jpg")
            Image.open(p).convert("RGB").save(dst, quality=88, optimize=True)
            published.append(str(dst))
        shutil.copyfile(args.out / "sheets-key.json", folder / "sheets-key.json")
        update_doc(args.doc, doc_section(report, rows, names, published))
        print(f"wrote {args.doc} and {folder}")
    print(
        f"\n{len(cases)} cases in {report['seconds']:.0f} s; sheets: "
        + ", ".join(str(p) for p in sheets)
        + f"; key: {args.out / 'sheets-key.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
