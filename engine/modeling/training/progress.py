"""The per-step log of a run (RUN_DIR/log_KIND.jsonl) and its progress line.

A step's losses stay on the device until a flush, so logging costs one device sync per
progress line rather than one per step. Only rank 0 writes the file; the values are already
global means over the ranks.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


class ProgressLog:
    def __init__(self, path: Path, kind: str, batch: int, main: bool):
        self.path, self.kind, self.batch, self.main = path, kind, batch, main
        self.pending: list[tuple[int, float, list[str], torch.Tensor]] = []  # not yet written
        self.last_log = time.monotonic()

    def add(self, step: int, lr: float, names: list[str], values: torch.Tensor) -> None:
        """One step's losses (`values` in the order of `names`), kept until the next flush."""
        self.pending.append((step, lr, names, values))

    def flush(self, now: float, step: int, total: int | None) -> None:
        """Write the pending per-step losses (one device sync) and print a progress line."""
        if not self.pending:
            return
        rows = [
            {
                "step": s,
                "lr": lr,
                **{k: round(v, 6) for k, v in zip(names, values.tolist(), strict=True)},
            }
            for s, lr, names, values in self.pending
        ]
        self.append(rows)
        steps = len(self.pending)
        rate = steps * self.batch / max(1e-6, now - self.last_log)
        left = (total - step) * (now - self.last_log) / steps if total else 0
        log.info(
            "%s step %d/%s loss %.4f lr %.2e %.0f img/s ETA %s",
            self.kind,
            step,
            total or "?",
            rows[-1]["loss"],
            rows[-1]["lr"],
            rate,
            format_eta(left),
        )
        self.pending, self.last_log = [], now

    def append(self, rows: list[dict[str, Any]]) -> None:
        if self.main:
            with self.path.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)


def format_eta(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"
