"""How one edit travels through the code: the hops of one GUI edit and one CLI edit, traced.

    .venv/bin/python bench/edit_hops.py [--root DIR] [--list]

Each edit runs in a child process under a profiler (`sys.setprofile`, on every thread) that
records each call of a function in app/, engine/ or mage_studio/ with the project functions on
its stack. The edit is the coffee sample with its mask on the default model, default settings:

- GUI: the editor offscreen, the sample opened and a brush stroke painted; once the token grid
  shows its plan, the Run button is clicked and the trace runs until the result is applied and
  the canvas has repainted.
- CLI: `main.py edit IMAGE --mask MASK -o OUT --seed 1`.

A hop is a project function on the stack when the work happens: reading the inputs, opening the
model, validating and planning, encoding, each transformer step, decoding, composing, writing the
PNG (CLI) or applying and showing the result (GUI). Step previews and the Recognition tab (not
in front) are left out. Printed: hops and files for each edit, with --list the hops in order,
and how often the functions that must run once per edit ran. `--root` traces another checkout
of the project (e.g. `git archive COMMIT | tar -x -C /tmp/old`) with this one's samples.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from unittest.mock import patch

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "samples" / "coffee.jpg"
MASK = REPO / "assets" / "samples" / "coffee-mask.png"

# where the work happens (Class.method or function names, matched at the end)
WORK = {
    "cli": (
        "load_image load_mask Bundle.__init__ plan_edit EditPlan.check check_inputs "
        "Bundle.encode Bundle.logits Bundle.decode composition synthesis filling fill save_png"
    ),
    "gui": (
        "JobController.start JobController._launch EditPlan.check check_inputs Bundle.encode "
        "Bundle.logits Bundle.decode composition synthesis filling fill Document.apply "
        "ResultsPanel.show_run ImageItem.update_rgb"
    ),
}
LEFT_OUT: tuple[str, ...] = (
    "_preview",
    "_Previews",
    "decode_region",
    "ecognition",
    "image_features",
    "_returning",
)
LEFT_OUT += ("JobController.call", "_run_fill.<locals>.<lambda>")
ONCE = (
    "check_inputs EditPlan.check plan_edit plan_key Settings.resolved Bundle.encode "
    "Bundle.decode composition synthesis Planner.request"
)


class Tracer:
    """Records (function, its project callers outermost first) for every project call."""

    def __init__(self, root: Path):
        self.root = str(root) + os.sep
        self.dirs = tuple(self.root + d + os.sep for d in ("app", "engine", "mage_studio"))
        self.calls: list[tuple[str, list[str]]] = []
        self._generators: dict[int, object] = {}  # a generator resumed is not a new call
        self._lock = threading.Lock()

    def _ours(self, code) -> bool:
        return code.co_filename.startswith(self.dirs)

    def _name(self, code) -> str:
        return f"{code.co_filename[len(self.root) :]}:{code.co_qualname}"

    def profile(self, frame, event, arg) -> None:
        if event != "call" or not self._ours(frame.f_code):
            return
        if frame.f_code.co_flags & 0x2A0:  # generator, coroutine, async generator
            if self._generators.get(id(frame)) is frame:
                return
            self._generators[id(frame)] = frame
        stack, outer = [], frame.f_back
        while outer is not None:
            if self._ours(outer.f_code):
                stack.append(self._name(outer.f_code))
            outer = outer.f_back
        with self._lock:
            self.calls.append((self._name(frame.f_code), stack[::-1]))

    def start(self) -> None:
        threading.setprofile(self.profile)
        sys.setprofile(self.profile)

    def stop(self) -> None:
        sys.setprofile(None)
        threading.setprofile(None)


def trace_cli(tracer: Tracer, out: Path) -> None:
    from mage_studio.entry import main

    argv = ["edit", str(SAMPLE), "--mask", str(MASK), "-o", str(out), "--seed", "1"]
    tracer.start()
    try:
        assert main(argv) == 0
    finally:
        tracer.stop()


def trace_gui(tracer: Tracer, folder: Path) -> None:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(folder))
    app = QApplication(["edit_hops"])
    import app.planner as planner
    import app.worker as worker
    from app.editor import Editor
    from app.preferences import Preferences
    from app.ui.main_window import MainWindow

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)

    editor = Editor()
    window = MainWindow(editor, Preferences(), interactive=False)
    window.resize(1100, 750)
    window.show()
    editor.models.load_default(wait=True)
    assert editor.open_file(str(SAMPLE))
    editor.begin_stroke()
    points = [(250, 150), (300, 170), (330, 210)]
    for a, b in itertools.pairwise(points):
        editor.stroke_segment(a, b, 18.0)
    editor.end_stroke("Brush")
    pump(0.3)
    assert editor.planner.wait_idle(30)
    pump(0.3)
    assert editor.plan is not None
    run_job = worker.GeneratorWorker.run

    def traced(self) -> None:  # the pool's threads are not Python threads: trace each job
        sys.setprofile(tracer.profile)
        try:
            run_job(self)
        finally:
            sys.setprofile(None)

    patch.object(worker.GeneratorWorker, "run", traced).start()  # for the rest of this process
    plan_edit = planner.plan_edit

    def traced_plan(*args, **kwargs):  # the planner's thread started before the trace
        sys.setprofile(tracer.profile)
        try:
            return plan_edit(*args, **kwargs)
        finally:
            sys.setprofile(None)

    planner.plan_edit = traced_plan
    applied: list[int] = []
    editor.applied_changed.connect(applied.append)
    tracer.start()
    try:
        window.run_panel.run_button.click()
        end = time.monotonic() + 300
        while 0 not in applied and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)
        assert 0 in applied, "the edit was not applied"
        pump(0.3)  # the canvas repaints; the cleared mask is planned
        assert editor.planner.wait_idle(30)
        pump(0.1)
    finally:
        tracer.stop()


def hops(calls, work: str) -> list[str]:
    """The project functions on the stack of every call of a `work` function, in order."""
    ends = tuple(":" + w for w in work.split())
    seen: dict[str, None] = {}
    for name, stack in calls:
        if name.endswith(ends):
            for hop in [*stack, name]:
                if "<module>" not in hop and not any(x in hop for x in LEFT_OUT):
                    seen.setdefault(hop)
    return list(seen)


def child(part: str, root: Path, out: Path) -> None:
    sys.path.insert(0, str(root))
    os.chdir(root)
    tracer = Tracer(root)
    with tempfile.TemporaryDirectory() as folder:
        if part == "cli":
            trace_cli(tracer, Path(folder) / "out.png")
        else:
            trace_gui(tracer, Path(folder))
    counts = Counter(
        name
        for name, stack in tracer.calls
        if not any(x in hop for hop in stack for x in LEFT_OUT)  # previews' decodes apart
    )
    once = {w: sum(n for k, n in counts.items() if k.endswith(":" + w)) for w in ONCE.split()}
    out.write_text(json.dumps({"hops": hops(tracer.calls, WORK[part]), "once": once}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO, help="checkout to trace")
    parser.add_argument("--list", action="store_true", help="print the hops in order")
    parser.add_argument("--part", choices=("cli", "gui"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root.resolve()
    if args.part:
        child(args.part, root, args.out)
        return 0
    for part in ("gui", "cli"):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "trace.json"
            command = [sys.executable, __file__, "--part", part, "--root", str(root)]
            subprocess.run([*command, "--out", str(out)], check=True, capture_output=True)
            found = json.loads(out.read_text())
        files = {hop.split(":")[0] for hop in found["hops"]}
        print(f"{part.upper()}: {len(found['hops'])} hops in {len(files)} files")
        if args.list:
            for i, hop in enumerate(found["hops"], 1):
                print(f"  {i:2d}. {hop}")
        print("  calls: " + ", ".join(f"{k} {v}" for k, v in found["once"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
