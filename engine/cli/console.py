"""Console helpers shared by the command-line commands: progress bar, bundle opening."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

MAX_NAME_BYTES = 255 - 16  # a file name, leaving room for the temp file's affixes
STALE_TEMP_SECONDS = 3600  # a temp file of ours this old was left by a killed run


class Progress:
    """A one-line progress bar with elapsed time and ETA on stderr."""

    def __init__(self, label: str, total: int, stream=None):
        self.label, self.total = label, max(total, 1)
        self.stream = stream or sys.stderr
        self.start = time.monotonic()

    def update(self, done: int, extra: str = "") -> None:
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 24)
        elapsed = time.monotonic() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{bar:<24}] {done}/{self.total} "
            f"{elapsed:5.1f}s eta {eta:4.1f}s {extra}"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def safe_text(text) -> str:
    """`text` as valid UTF-8 for a terminal or a PNG text chunk: the undecodable bytes of a
    file name (surrogate escapes) become U+FFFD instead of failing the write."""
    text = str(text)
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
    return data.decode("utf-8", "replace")


def open_bundle(args):
    """The bundle named by `--model` (default: the bundled model) on `--device`; notices such
    as a CUDA fallback go to stderr once."""
    from engine.runtime.bundle import Bundle
    from engine.runtime.locations import default_bundle_path

    bundle = Bundle(args.model or default_bundle_path(), device=args.device)
    for notice in bundle.notices:
        print(f"notice: {notice}", file=sys.stderr)
    return bundle


# -- flags and outputs shared by the commands ------------------------------------------------


def int_in(low: int, high: int):
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    parse.__name__ = "whole number"
    return parse


def float_in(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse type: a finite number in [low, high] ('(' / ')' ends with the *_open
    flags)."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if (
            not math.isfinite(value)
            or value < low
            or value > high
            or (low_open and value == low)
            or (high_open and value == high)
        ):
            raise argparse.ArgumentTypeError(f"{text} is outside {span}")
        return value

    parse.__name__ = "number"
    return parse


def clean_stale_temps(paths: list[Path], now: float | None = None) -> list[Path]:
    """Remove the temp files a killed run left beside these outputs: only regular files
    named like ours (".NAME.XXXXXXXX.tmp") and older than STALE_TEMP_SECONDS. Returns them."""
    now = time.time() if now is None else now
    removed = []
    for path in paths:
        pattern = re.compile(rf"^\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp$")
        try:
            entries = list(os.scandir(path.parent))
        except OSError:
            continue
        for entry in entries:
            if not pattern.match(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if (
                    entry.is_file(follow_symlinks=False)
                    and now - info.st_mtime > STALE_TEMP_SECONDS
                ):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:
                continue
    return removed
