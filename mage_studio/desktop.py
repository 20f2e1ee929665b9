"""`mage-studio --install-desktop`: add MAGE Studio to a freedesktop application menu.

Writes `$XDG_DATA_HOME/applications/mage-studio.desktop` (from assets/mage-studio.desktop, with
`Exec` pointing at this installation's `mage-studio-gui`, or at this Python with `-m
mage_studio` when that script is absent) and the icon into `$XDG_DATA_HOME/icons/hicolor`
(every PNG size and the SVG). `$XDG_DATA_HOME` defaults to ~/.local/share, and a relative
value is ignored, as the XDG Base Directory spec asks. Nothing outside that folder is touched.

Every file is written to a temp file of a fresh random name opened exclusively without
following links (a link planted at any name is never written through), then renamed over the
destination; a failed write removes its temp file. A file at a destination that the app did not
write (recognised by content: the entry is the template with only its `Exec` line changed, an
icon is byte for byte one of ours) is a user's own and is left alone, with a one-line notice,
by both install and `--uninstall-desktop`, which removes only the app's files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.runtime.locations import shipped_dir

APP_ID = "mage-studio"
GUI_SCRIPT = "mage-studio-gui"
# Larger than any entry or icon we ship; a bigger file at a destination is not ours.
MAX_OWN_BYTES = 1 << 20


@dataclass
class Outcome:
    """What install() or uninstall() did: the files written or removed, and one line per
    destination left alone."""

    done: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def data_home() -> Path:
    """$XDG_DATA_HOME when it is an absolute path, else ~/.local/share (the spec says a
    relative path is invalid and must be ignored)."""
    env = os.environ.get("XDG_DATA_HOME", "").strip()
    return Path(env) if env and os.path.isabs(env) else Path.home() / ".local" / "share"


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


def _is_our_entry(data: bytes, template: str) -> bool:
    """An entry this app wrote, for any installation: the template with only Exec changed."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return False
    want = template.splitlines()
    if len(lines) != len(want):
        return False
    return all(
        a == b or (a.startswith("Exec=") and b.startswith("Exec="))
        for a, b in zip(lines, want, strict=True)
    )


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


def _read_existing(dest: Path) -> bytes | None:
    """The bytes of a regular file at `dest` read without following a link or blocking on a
    FIFO; None when nothing is there. Raises _NotOurs for anything that cannot be ours."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise _NotOurs("it is not a regular file")
    if st.st_size > MAX_OWN_BYTES:
        raise _NotOurs("it is larger than any file MAGE Studio writes")
    fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as stream:
        return stream.read(MAX_OWN_BYTES + 1)


class _NotOurs(Exception):
    pass


def _ours(dest: Path, source: Path | None, template: str, new: bytes) -> bool | None:
    """True when `dest` holds a file this app wrote, None when nothing is there; raises
    _NotOurs (with the reason) for a user's own file."""
    data = _read_existing(dest)
    if data is None:
        return None
    if data == new:
        return True
    if source is None:
        if _is_our_entry(data, template):
            return True
    elif data == source.read_bytes():
        return True
    raise _NotOurs("MAGE Studio did not write it (or it was changed since)")


def _write_new(dest: Path, data: bytes) -> None:
    """Writes `data` to a fresh, exclusively created temp file beside `dest` (never through a
    link) and renames it over `dest`; the temp file is removed when anything fails."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sweep_temps(dest: Path) -> None:
    """Removes our own temp files for `dest` that a killed install left (older than a
    minute, regular files only: a link with that name is removed, never followed)."""
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        try:
            st = os.lstat(tmp)
            kind_ok = stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
            if kind_ok and time.time() - st.st_mtime > 60:
                os.unlink(tmp)
        except OSError:
            pass


def _notice(dest: Path, why: str, hint: str) -> str:
    return f"left {dest} alone: {why}{hint}"


def install(assets: Path | None = None, home: Path | None = None) -> Outcome:
    """Write the desktop entry and icons; a user's own file at a destination stays."""
    _check_platform()
    assets = assets or shipped_dir("assets")
    home = home or data_home()
    template = (assets / f"{APP_ID}.desktop").read_text(encoding="utf-8")
    outcome = Outcome()
    for source, dest in _targets(assets, home):
        new = (
            entry_text(template, launcher()).encode("utf-8")
            if source is None
            else source.read_bytes()
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        _sweep_temps(dest)
        try:
            _ours(dest, source, template, new)
        except _NotOurs as why:
            outcome.notices.append(_notice(dest, str(why), "; move it away to install ours"))
            continue
        _write_new(dest, new)
        outcome.done.append(dest)
    return outcome


def uninstall(assets: Path | None = None, home: Path | None = None) -> Outcome:
    """Remove what install() wrote; a user's own file at one of those names stays."""
    _check_platform()
    assets = assets or shipped_dir("assets")
    home = home or data_home()
    template = (assets / f"{APP_ID}.desktop").read_text(encoding="utf-8")
    outcome = Outcome()
    for source, dest in _targets(assets, home):
        new = (
            entry_text(template, launcher()).encode("utf-8")
            if source is None
            else source.read_bytes()
        )
        try:
            if _ours(dest, source, template, new) is None:
                continue
        except _NotOurs as why:
            outcome.notices.append(_notice(dest, str(why), ""))
            continue
        os.unlink(dest)  # unlink never follows a link, and dest was a regular file
        outcome.done.append(dest)
    return outcome
