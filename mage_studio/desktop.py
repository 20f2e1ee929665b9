"""`mage-studio --install-desktop`: add MAGE Studio to a freedesktop application menu.

Writes `$XDG_DATA_HOME/applications/mage-studio.desktop` (from assets/mage-studio.desktop, with
`Exec` pointing at this installation's `mage-studio-gui`, or at this Python with `-m
mage_studio` when that script is absent) and the icon into `$XDG_DATA_HOME/icons/hicolor`
(every PNG size and the SVG). `$XDG_DATA_HOME` defaults to ~/.local/share. Nothing outside that
folder is touched; `--uninstall-desktop` removes exactly these files.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from engine.runtime.locations import shipped_dir

APP_ID = "mage-studio"
GUI_SCRIPT = "mage-studio-gui"


def data_home() -> Path:
    env = os.environ.get("XDG_DATA_HOME", "").strip()
    return Path(env) if env else Path.home() / ".local" / "share"


def _quote(arg: str) -> str:
    """One Exec argument, quoted as the Desktop Entry spec asks when it needs quoting."""
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return '"' + escaped.replace("\\", "\\\\") + '"'  # the file format doubles backslashes too


def launcher() -> list[str]:
    """The command that opens the editor of this installation."""
    folders = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for folder in folders:
        for name in (GUI_SCRIPT, GUI_SCRIPT + ".exe"):
            if (folder / name).is_file():
                return [str(folder / name)]
    return [sys.executable, "-m", "mage_studio"]


def entry_text(template: str, command: list[str]) -> str:
    exec_line = "Exec=" + " ".join(_quote(a) for a in command) + " %f"
    lines = [exec_line if ln.startswith("Exec=") else ln for ln in template.splitlines()]
    return "\n".join(lines) + "\n"


def _targets(assets: Path, home: Path) -> list[tuple[Path | None, Path]]:
    """(source, destination) of every file; source None = the generated .desktop file."""
    icons = assets / "icons"
    hicolor = home / "icons" / "hicolor"
    out: list[tuple[Path | None, Path]] = [(None, home / "applications" / f"{APP_ID}.desktop")]
    for png in sorted(icons.glob(f"{APP_ID}-*.png")):
        size = png.stem.rsplit("-", 1)[1]
        out.append((png, hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png"))
    out.append((icons / f"{APP_ID}.svg", hicolor / "scalable" / "apps" / f"{APP_ID}.svg"))
    return out


def _check_platform() -> None:
    if sys.platform in ("win32", "darwin"):
        raise OSError("desktop entries are for Linux and other freedesktop desktops")


def install(assets: Path | None = None, home: Path | None = None) -> list[Path]:
    """Write the desktop entry and icons; returns the files written."""
    _check_platform()
    assets = assets or shipped_dir("assets")
    home = home or data_home()
    template = (assets / f"{APP_ID}.desktop").read_text(encoding="utf-8")
    written = []
    for source, dest in _targets(assets, home):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        if source is None:
            tmp.write_text(entry_text(template, launcher()), encoding="utf-8")
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        written.append(dest)
    return written


def uninstall(assets: Path | None = None, home: Path | None = None) -> list[Path]:
    """Remove what install() wrote; returns the files removed."""
    _check_platform()
    removed = []
    for _source, dest in _targets(assets or shipped_dir("assets"), home or data_home()):
        if dest.is_file():
            dest.unlink()
            removed.append(dest)
    return removed
