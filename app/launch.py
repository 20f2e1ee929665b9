"""Starts the editor: `python main.py [--open IMAGE [--mask MASK]] [--screenshot PATH] ...`.

--about opens Help > About and --demo starts demo mode; with --screenshot they grab that window
instead (demo mode is played fast and frozen at the middle decoding step or, with
--demo-shot result, at the result).

With --screenshot the window opens, the model loads, the optional edit runs to the end (the
worker is awaited while events are processed), the window is grabbed to PATH and the program
exits 0: a scripted proof that the real window works, used by tests and the docs.

The session is autosaved (app.autosave). When the last run did not end cleanly the app offers
to restore it: --restore (or $MAGE_STUDIO_RESTORE) = ask | yes | no. An explicit --open wins
over a restore: the interactive app then keeps the crashed session in "older sessions", a
scripted one leaves it where it is. A --screenshot run without --restore neither reads nor
writes the autosave; with --restore it may read (restore) the session but never asks (ask =
leave it for the next interactive start), never autosaves over it and never removes it, so
scripted runs never cost a user their session.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from app.autosave import Autosaver
from app.editor import Editor
from app.model_manager import DEVICES
from app.preferences import APPLICATION, ORGANISATION, Preferences
from app.ui.about import show_about
from app.ui.demo import DemoTiming, start_demo
from app.ui.icon import DESKTOP_ID, app_icon
from app.ui.main_window import MainWindow
from app.ui.theme import apply_theme, follow_system

SCREENSHOT_SIZE = (1440, 900)
ENV_RESTORE = "MAGE_STUDIO_RESTORE"
RESTORE_CHOICES = ("ask", "yes", "no")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="main.py", description="MAGE Studio image editor")
    parser.add_argument("--open", metavar="IMAGE", help="image to open")
    parser.add_argument("--mask", metavar="MASK", help="mask to load (white = refill)")
    parser.add_argument(
        "--screenshot",
        metavar="PATH",
        help="run the edit (if a mask is given), save the window to PATH, exit",
    )
    parser.add_argument("--model", metavar="DIR", help="model bundle folder")
    parser.add_argument("--device", choices=DEVICES, help="where the model runs")
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="with --screenshot: show the mask and token grid, do not run",
    )
    parser.add_argument("--seed", type=int, help="fixed seed for the scripted edit")
    parser.add_argument("--save", metavar="PNG", help="with --screenshot: also save the image")
    parser.add_argument(
        "--run",
        action="store_true",
        help="without --screenshot: start the edit once the model is loaded",
    )
    parser.add_argument("--about", action="store_true", help="open Help > About")
    parser.add_argument(
        "--demo", action="store_true", help="start in demo mode (full screen; any key leaves it)"
    )
    parser.add_argument(
        "--demo-shot",
        choices=("decode", "result"),
        default="decode",
        help="with --demo --screenshot: grab the middle decoding step or the result",
    )
    parser.add_argument(
        "--restore",
        choices=RESTORE_CHOICES,
        help=f"restore a session a crash left behind (default: ${ENV_RESTORE} or ask)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problem = check_outputs(args)
    if problem:
        print(f"main.py: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["MAGE Studio"])
    app.setWindowIcon(app_icon())
    app.setDesktopFileName(DESKTOP_ID)
    prefs = Preferences()
    apply_theme(app, prefs.theme)
    follow_system(app, lambda: prefs.theme)
    scripted = args.screenshot is not None
    restore = args.restore or os.environ.get(ENV_RESTORE, "").strip().lower() or None
    if restore not in (None, *RESTORE_CHOICES):
        restore = "ask"
    editor = Editor()
    editor.set_options(prefs.options())
    if scripted:  # a scripted run has no one watching the banner: problems go to stderr too
        editor.error.connect(lambda text: print(text, file=sys.stderr))
    autosaver = None if scripted and restore is None else Autosaver(editor)
    window = MainWindow(editor, prefs, interactive=not scripted, autosaver=autosaver)
    _install_excepthook(editor)
    if scripted:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    _load_model(editor, prefs, args, wait=scripted)
    if args.seed is not None:
        editor.set_options(replace(editor.options, seed=args.seed, fixed_seed=True))
    if autosaver is not None:
        offer_restore(window, autosaver, restore or "ask", opening=args.open, scripted=scripted)
        app.aboutToQuit.connect(lambda: autosaver.close(clean=False))
        if autosaver.problem:
            window.banner.show_message(autosaver.problem, "error")
            if scripted:
                print(autosaver.problem, file=sys.stderr)
    if args.open:
        window.open_path(args.open)
        if args.mask and editor.document is not None:
            window.load_mask_file(args.mask)
    if autosaver is not None and not scripted:
        autosaver.start()
    if not scripted:
        if args.run and args.mask and editor.document is not None:
            _run_when_loaded(editor)
        if args.about:
            show_about(window)
        if args.demo:
            start_demo(window)
        return app.exec()
    if args.demo:
        return _demo_screenshot(app, window, editor, args)
    return _screenshot(app, window, editor, args)


def offer_restore(
    window: MainWindow,
    autosaver: Autosaver,
    choice: str,
    opening: str | None = None,
    scripted: bool = False,
) -> bool:
    """Restores a session the last run left behind when `choice` says so ("ask": a dialog,
    never in a scripted run). An explicit `opening` (--open) wins over any choice. Returns
    True when a document was restored."""
    info = autosaver.pending()
    if info is None:
        return False
    if scripted and "error" not in info and (opening or choice != "yes"):
        if choice == "no":  # said explicitly: set aside as a declined session
            where = autosaver.set_aside("declined")
            if where is not None:
                print(f"The last session was set aside in {where}", file=sys.stderr)
            return False
        why = "--open was given" if opening else "a scripted run never asks"
        print(
            f"A session a crash left behind was not restored ({why}); it is kept for the "
            "next start (--restore yes restores it)",
            file=sys.stderr,
        )
        return False
    if opening and "error" not in info:
        where = autosaver.set_aside("not restored")
        if where is not None:
            window.banner.show_message(
                f"{Path(opening).name} was opened instead of restoring the session a crash "
                f"left behind; that session was kept in {where}",
                "info",
            )
        return False
    if "error" in info:  # damaged: never offered again, never deleted, the app starts
        where = autosaver.set_aside("damaged")
        kept = f"; it was set aside in {where}" if where is not None else ""
        window.banner.show_message(
            f"Could not restore the last session: {info['error']}{kept}", "error"
        )
        return False
    if choice == "ask":
        choice = "yes" if ask_restore(window, info) else "no"
    if choice != "yes":
        where = autosaver.set_aside("declined")
        if where is not None:
            window.statusBar().showMessage(f"The last session was set aside in {where}", 15000)
        return False
    problem = autosaver.restore()
    if problem:
        window.banner.show_message(problem, "error")
        return False
    window.statusBar().showMessage("Restored the last session", 8000)
    return True


def restore_question(info: dict) -> str:
    """The text of the restore question for a checked session's JSON."""
    name = Path(str(info.get("path") or "untitled")).name
    try:
        when = time.strftime("%H:%M on %d %b", time.localtime(info.get("time", time.time())))
    except (TypeError, ValueError, OverflowError, OSError):
        when = "an unknown time"
    steps = info.get("history_index", 0)
    return (
        f"MAGE Studio did not close properly. Restore your work on {name} "
        f"({steps} edit{'s' if steps != 1 else ''}, autosaved at {when})?"
    )


def ask_restore(parent, info: dict) -> bool:
    """The question shown at start after a crash (tests replace this function)."""
    text = restore_question(info)
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Discard
    answer = QMessageBox.question(
        parent, "Restore unsaved work?", text, buttons, QMessageBox.StandardButton.Yes
    )
    return answer == QMessageBox.StandardButton.Yes


def _run_when_loaded(editor: Editor) -> None:
    """--run: start the edit as soon as the model is there."""
    if editor.bundle is not None:
        editor.start_run()
        return

    def once(_bundle) -> None:
        editor.models.loaded.disconnect(once)
        editor.start_run()

    editor.models.loaded.connect(once)


def _install_excepthook(editor: Editor) -> None:
    """An unexpected exception in a slot is logged with its traceback and shown as one line;
    the window stays up and the autosave keeps the work."""

    def hook(kind, value, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        logging.getLogger("app").error(
            "unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb))
        )
        text = str(value).strip().splitlines()[0] if str(value).strip() else kind.__name__
        with contextlib.suppress(RuntimeError):  # the editor is already gone
            editor.report_error(f"Unexpected error: {text[:200]} (details in the log)")

    sys.excepthook = hook


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
    if args.mask and not args.no_run and editor.document is not None and editor.bundle is not None:
        _settle()
        if editor.start_run():
            editor.jobs.wait_idle(600)
    _settle(0.3)
    editor.planner.wait_idle(60)  # the token grid is drawn from the latest plan
    _settle()
    if args.save:
        problem, told = _save(editor, args.save)
        if problem:
            if not told:  # the editor's own errors already went to stderr
                print(problem, file=sys.stderr)
            if window.autosaver is not None:
                window.autosaver.close(clean=False)  # a restored session stays restorable
            return 1
    shown: QWidget = window
    if args.about:
        shown = show_about(window)
        shown.resize(900, SCREENSHOT_SIZE[1])
        _settle(0.3)
    if not shown.grab().save(args.screenshot):
        print(f"could not write the screenshot {args.screenshot}", file=sys.stderr)
        return 1
    window.close()
    app.processEvents()
    return 0


def check_outputs(args) -> str:
    """Why the files a scripted run would write are refused ("" when they are fine): an
    output must be a file in an existing folder and never one of the inputs (same path after
    resolving links, or the same file through a hard link)."""
    if args.save is not None and args.screenshot is None:
        return "--save works only with --screenshot"
    inputs = [(flag, path) for flag, path in (("--open", args.open), ("--mask", args.mask)) if path]
    outputs = [
        (flag, path)
        for flag, path in (("--screenshot", args.screenshot), ("--save", args.save))
        if path
    ]
    for flag, path in outputs:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            return f"cannot write {flag} '{path}': the folder '{folder}' does not exist"
        if os.path.isdir(path):
            return f"cannot write {flag} '{path}': a folder with that name exists"
        for other, source in inputs:
            if _same_path(path, source):
                return f"cannot write {flag} '{path}': that is the {other} file; choose a new name"
    if len(outputs) == 2 and _same_path(args.save, args.screenshot):
        return "--save and --screenshot name the same file; choose two names"
    return ""


def _same_path(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _save(editor: Editor, path: str) -> tuple[str, bool]:
    """--save: ("", False) once the image is written, else the one-line reason and whether
    the editor reported it itself."""
    if editor.document is None:
        return f"Cannot save '{path}': no image is open", False
    errors: list[str] = []
    saved: list[str] = []

    def on_error(text: str) -> None:
        errors.append(text)

    def on_saved(name: str) -> None:
        saved.append(name)

    editor.error.connect(on_error)
    editor.saved.connect(on_saved)
    try:
        editor.save(path)
    finally:
        editor.error.disconnect(on_error)
        editor.saved.disconnect(on_saved)
    if saved:
        return "", False
    return (errors[-1], True) if errors else (f"Cannot save '{path}'", False)


def _demo_screenshot(app: QApplication, window: MainWindow, editor: Editor, args) -> int:
    """Plays demo mode fast up to the state --demo-shot names, then grabs it."""
    demo = start_demo(window, DemoTiming().scaled(0.02), full_screen=False)
    demo.resize(*SCREENSHOT_SIZE)
    bundle = editor.bundle
    steps = editor.options.steps or (
        int(bundle.manifest.decoding.get("steps", 12)) if bundle is not None else 12
    )
    demo.hold = ("decode", steps // 2) if args.demo_shot == "decode" else ("result", -1)
    deadline = time.monotonic() + 600
    while (
        (demo.phase, demo.step) != demo.hold
        and demo.phase != "message"
        and time.monotonic() < deadline
    ):
        _settle(0.05)
    _settle(0.3)
    print(f"demo mode: {demo.phase} {demo.step}: {demo.caption}", file=sys.stderr)
    reached = (demo.phase, demo.step) == demo.hold
    if not demo.grab().save(args.screenshot):
        print(f"could not write the screenshot {args.screenshot}", file=sys.stderr)
        return 1
    demo.leave()
    window.close()
    app.processEvents()
    return 0 if reached else 1


def _settle(seconds: float = 0.1) -> None:
    """Let queued signals, timers and repaints run."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.01)
