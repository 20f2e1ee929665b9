"""Event-loop latency while the editor saves a large image.

A 5 ms timer runs while a WxH photo-like image is saved twice: by `Editor.save` (the PNG is
encoded and written on another thread while the window's thread keeps processing events) and by
calling `save_png` on the window's thread (as saving worked before). The longest gap between
two timer ticks is how long the window could not answer a key or repaint.

    QT_QPA_PLATFORM=offscreen python bench/save_latency.py [--size 4000x3000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def photo_like(h: int, w: int) -> np.ndarray:
    """Smooth gradients with fine grain: compresses about as a camera photo does."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / w, y / h, (x + y) / (w + h)], axis=-1) * 200 + 20
    grain = np.random.default_rng(0).normal(0, 6, (h, w, 3))
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def measure(save) -> tuple[float, float, int]:
    """(seconds, longest gap between ticks in ms, ticks) while `save()` runs."""
    from PySide6.QtCore import QTimer

    stamps: list[float] = []
    timer = QTimer(interval=5)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start()
    start = time.perf_counter()
    save()
    end = time.perf_counter()
    timer.stop()
    points = [start, *stamps, end]
    gap = max(b - a for a, b in itertools.pairwise(points))
    return end - start, 1000 * gap, len(stamps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4000x3000", help="WxH of the saved image")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    from PySide6.QtWidgets import QApplication

    from app.editor import Editor
    from engine.runtime.imageio import save_png

    app = QApplication.instance() or QApplication([])
    editor = Editor()
    rgb = photo_like(h, w)
    editor.set_image(rgb)
    with tempfile.TemporaryDirectory() as folder:
        background = measure(lambda: editor.save(str(Path(folder) / "background.png")))
        blocking = measure(lambda: save_png(Path(folder) / "blocking.png", rgb))
    print(f"{w}x{h}: longest pause of the event loop while saving")
    for name, (seconds, gap, ticks) in (
        ("Editor.save (background)", background),
        ("save_png on the GUI thread", blocking),
    ):
        print(f"  {name:28s} {seconds:6.2f} s   longest gap {gap:8.1f} ms   {ticks} ticks")
    print(f"  the window's longest pause is {blocking[1] / max(background[1], 1e-3):.0f}x shorter")
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
