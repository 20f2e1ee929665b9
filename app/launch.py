"""Starts the editor: `python main.py [--open IMAGE [--mask MASK]] [--screenshot PATH] ...`.

With --screenshot the window opens, the model loads, the optional edit runs to the end (the
worker is awaited while events are processed), the window is grabbed to PATH and the program
exits 0: a scripted proof that the real window works, used by tests and the docs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtWidgets import QApplication

from app.editor import Editor
from app.main_window import MainWindow
from app.model_manager import DEVICES
from app.settings import APPLICATION, ORGANISATION, Preferences
from app.theme import apply_theme, follow_system

SCREENSHOT_SIZE = (1440, 900)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="main.py", description="MAGE Studio image editor")
    parser.add_argument("--open", metavar="IMAGE", help="image to open")
    parser.add_argument("--mask", metavar="MASK", help="mask to load (white = refill)")
    parser.add_argument("--screenshot", metavar="PATH",
                        help="run the edit (if a mask is given), save the window to PATH, exit")
    parser.add_argument("--model", metavar="DIR", help="model bundle folder")
    parser.add_argument("--device", choices=DEVICES, help="where the model runs")
    parser.add_argument("--no-run", action="store_true",
                        help="with --screenshot: show the mask and token grid, do not run")
    parser.add_argument("--seed", type=int, help="fixed seed for the scripted edit")
    parser.add_argument("--save", metavar="PNG", help="with --screenshot: also save the image")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    app = QApplication.instance() or QApplication(["MAGE Studio"])
    prefs = Preferences()
    apply_theme(app, prefs.theme)
    follow_system(app, lambda: prefs.theme)
    scripted = args.screenshot is not None
    editor = Editor()
    editor.set_options(prefs.options())
    window = MainWindow(editor, prefs, interactive=not scripted)
    if scripted:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    _load_model(editor, prefs, args, wait=scripted)
    if args.open:
        window.open_path(args.open)
        if args.mask and editor.document is not None:
            window.load_mask_file(args.mask)
    if not scripted:
        return app.exec()
    return _screenshot(app, window, editor, args)


def _load_model(editor: Editor, prefs: Preferences, args, wait: bool) -> None:
    saved_path, saved_device = prefs.model()
    device = args.device or saved_device or "auto"
    if args.model:
        editor.models.load(args.model, device, wait=wait)
    elif saved_path and Path(saved_path).is_dir():
        editor.models.load(saved_path, device, wait=wait)
    else:
        editor.models.load_default(device, wait=wait)
    if wait:
        _settle()


def _screenshot(app: QApplication, window: MainWindow, editor: Editor, args) -> int:
    from dataclasses import replace

    if (args.mask and not args.no_run and editor.document is not None
            and editor.bundle is not None):
        if args.seed is not None:
            editor.set_options(replace(editor.options, seed=args.seed, fixed_seed=True))
        _settle()
        if editor.start_run():
            editor.jobs.wait_idle(600)
    _settle(0.3)
    if args.save and editor.document is not None:
        editor.save(args.save)
    if not window.grab().save(args.screenshot):
        print(f"could not write the screenshot {args.screenshot}", file=sys.stderr)
        return 1
    window.close()
    app.processEvents()
    return 0


def _settle(seconds: float = 0.1) -> None:
    """Let queued signals, timers and repaints run."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.01)
