"""Console helpers shared by the command-line commands: progress bar, bundle opening."""

from __future__ import annotations

import sys
import time


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
        self.stream.write(f"\r{self.label} [{bar:<24}] {done}/{self.total} "
                          f"{elapsed:5.1f}s eta {eta:4.1f}s {extra}")
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
    from engine.runtime.models import default_bundle_path

    bundle = Bundle(args.model or default_bundle_path(), device=args.device)
    for notice in bundle.notices:
        print(f"notice: {notice}", file=sys.stderr)
    return bundle
