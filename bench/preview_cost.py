"""What step previews cost a run as the editor makes it, on the default model.

    .venv/bin/python bench/preview_cost.py [--runs 5] [--model DIR] [--candidates 1]

The samples in assets/samples (coffee, astronaut) with their masks, edited through the engine's
`run(...)` as the editor drives it (plan first, then the run generator stepped to the end), with
previews every 0.25 s (the editor's interval), on every step (interval 0) and off (interval
infinite), interleaved in one process after one warm-up run each. Wall and CPU seconds per run
(medians, min-max) and the ratio of the medians to previews off. Goal: previews cost at most
10% more than none.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runtime.bundle import Bundle  # noqa: E402
from engine.runtime.imageio import load_image, load_mask  # noqa: E402
from engine.runtime.locations import default_bundle_path  # noqa: E402
from engine.runtime.runs import Edit, plan_or_raise, run  # noqa: E402
from engine.runtime.settings import Settings, seeds_from  # noqa: E402

SAMPLES = ("coffee", "astronaut")
INTERVALS = {"every 0.25 s": 0.25, "every step": 0.0, "off": math.inf}


def gui_run(bundle: Bundle, rgb, mask, settings: Settings, interval: float) -> tuple:
    """(wall s, CPU s, previews) of one run, as the editor's job steps it."""
    t0, c0 = time.perf_counter(), time.process_time()
    plan = plan_or_raise(bundle.manifest, rgb, mask, settings)
    previews = 0
    gen = run(bundle, Edit(rgb, plan), settings, preview_interval=interval)
    while True:
        try:
            step = next(gen)
        except StopIteration:
            break
        previews += step.preview is not None
    return time.perf_counter() - t0, time.process_time() - c0, previews


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--candidates", type=int, default=1)
    args = ap.parse_args()
    bundle = Bundle(args.model or default_bundle_path(), device="cpu")
    settings = Settings(seeds=seeds_from(7, args.candidates))
    print(
        f"model {bundle.manifest.name} on the {bundle.device}; {args.candidates} candidate(s); "
        f"{args.runs} interleaved runs; seconds per run: median (min-max)"
    )
    print("| sample | previews | shown | wall s | CPU s | wall / off | CPU / off |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for name in SAMPLES:
        image = load_image(REPO / "assets" / "samples" / f"{name}.jpg")
        h, w = image.rgb.shape[:2]
        mask = load_mask(REPO / "assets" / "samples" / f"{name}-mask.png", size=(w, h))
        for interval in INTERVALS.values():  # warm-up: sessions, caches, allocator
            gui_run(bundle, image.rgb, mask, settings, interval)
        times: dict[str, list[tuple[float, float, int]]] = {k: [] for k in INTERVALS}
        for _ in range(args.runs):
            for label, interval in INTERVALS.items():
                times[label].append(gui_run(bundle, image.rgb, mask, settings, interval))
        off_wall = statistics.median(t[0] for t in times["off"])
        off_cpu = statistics.median(t[1] for t in times["off"])
        for label, rows in times.items():
            wall, cpu = [t[0] for t in rows], [t[1] for t in rows]
            ratio_wall = statistics.median(wall) / off_wall
            ratio_cpu = statistics.median(cpu) / off_cpu
            if label == "every 0.25 s":
                worst = max(worst, ratio_wall, ratio_cpu)
            print(
                f"| {name} {w}x{h} | {label} | {statistics.median(t[2] for t in rows):g} | "
                f"{spread(wall)} | {spread(cpu)} | {ratio_wall:.2f} | {ratio_cpu:.2f} |"
            )
    verdict = "within" if worst <= 1.10 else "over"
    print(f"\neditor's previews (every 0.25 s): at most {worst:.2f}x previews off ({verdict} 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
