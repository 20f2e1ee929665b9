"""The one entry point: no command opens the editor, a sub-command runs the CLI.

    mage-studio                          the editor, on the default model
    mage-studio PHOTO                    the editor with PHOTO open
    mage-studio [--open IMG] [...]       the editor with its options (see --help-editor)
    mage-studio edit|generate|...        the command line (see --help)
    mage-studio --install-desktop        add MAGE Studio to the desktop's application menu
    mage-studio --version

`main.py` in a checkout, the installed `mage-studio` script and `python -m mage_studio` all call
`main()`; the `mage-studio-gui` script calls `gui_main()`, which always opens the editor.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Sub-commands of engine.cli (tests/test_install.py checks this against its parser).
CLI_COMMANDS = frozenset(
    {
        "edit",
        "generate",
        "extend",
        "classify",
        "probe",
        "fewshot",
        "import-mage",
        "import-maskgit",
        "download",
        "export",
        "train",
    }
)
CLI_HELP = frozenset({"-h", "--help"})
EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv else None
    if first in ("-v", "--verbose") and len(argv) > 1 and argv[1] in CLI_COMMANDS:
        first = argv[1]  # the CLI's own top-level flag before the command
    if first in CLI_COMMANDS or first in CLI_HELP:
        from engine.cli import main as cli_main

        return cli_main(argv)
    if first == "--version":
        from mage_studio import __version__

        print(f"mage-studio {__version__}")
        return 0
    if first in ("--install-desktop", "--uninstall-desktop"):
        return _desktop(first, argv[1:])
    if first == "--help-editor":
        return gui_main(["--help"])
    if first is not None and not first.startswith("-"):
        if not Path(first).is_file():
            shown = ", ".join(sorted(CLI_COMMANDS))
            print(
                f"error: '{first}' is neither a command ({shown}) nor an image file",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        argv = ["--open", *argv]  # `mage-studio photo.jpg`, as a file manager calls it
    return gui_main(argv)


def gui_main(argv: list[str] | None = None) -> int:
    """Open the editor; `argv` are the editor's options (app.launch)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and Path(argv[0]).is_file():
        argv = ["--open", *argv]
    from app.launch import main as app_main

    return app_main(argv)


def _desktop(flag: str, rest: list[str]) -> int:
    from mage_studio import desktop

    if rest:
        print(f"error: {flag} takes no arguments (got {' '.join(rest)})", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        outcome = desktop.install() if flag == "--install-desktop" else desktop.uninstall()
    except OSError as e:
        print(f"error: cannot write the desktop entry: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    verb = "wrote" if flag == "--install-desktop" else "removed"
    for path in outcome.done:
        print(f"{verb} {path}")
    for line in outcome.notices:
        print(line, file=sys.stderr)
    return 0
