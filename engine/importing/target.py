"""Where a bundle is written: refusing output folders that must not be replaced, and moving a
finished bundle into place (shared by the importers and the PyTorch export)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from engine.importing.errors import ExportError
from engine.runtime.manifest import is_bundle_folder, read_manifest


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_target(out_dir: Path, overwrite: bool, inputs: Sequence[str | Path | None] = ()) -> None:
    """Refuse an output folder that must not be replaced: an existing non-empty folder without
    `overwrite`; with it, anything but a model bundle (manifest.json of format mage-bundle
    holding only its own files), a folder holding an input of the command, and the root, home
    or current folder (or one above them)."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise ExportError(f"{out_dir} is a symbolic link: give the real folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    real = out_dir.resolve()
    for name, special in (
        ("the root folder", Path(real.anchor)),
        ("your home folder", Path.home()),
        ("the current folder", Path.cwd()),
    ):
        try:
            special = special.resolve()
        except OSError:
            continue
        if real == special or real in special.parents:
            raise ExportError(f"refusing to write a bundle to {out_dir}: it is {name} or holds it")
    for src in inputs:
        if src is not None and _inside(Path(src).resolve(), real):
            raise ExportError(f"refusing to replace {out_dir}: it holds the input {src}")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise ExportError(f"{out_dir} exists and is not empty (use --overwrite to replace it)")
    if not is_bundle_folder(out_dir):
        raise ExportError(
            f"refusing to replace {out_dir}: it is not a model bundle (no "
            "manifest.json of a MAGE bundle); --overwrite only replaces bundles"
        )
    listed = set(read_manifest(out_dir, verify_hashes=False).files) | {"manifest.json"}
    for entry in out_dir.rglob("*"):
        rel = entry.relative_to(out_dir).as_posix()
        if (
            entry.is_dir()
            and not entry.is_symlink()
            and any(name.startswith(rel + "/") for name in listed)
        ):
            continue
        if rel not in listed:
            raise ExportError(
                f"refusing to replace {out_dir}: it holds {rel}, which is not "
                "part of the bundle (move it out first)"
            )


def swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Move the finished bundle `tmp` to `out_dir`: an old bundle there is renamed aside, the
    new one renamed in, then the old one removed (on failure the old one is put back)."""
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    if not out_dir.exists():
        tmp.rename(out_dir)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    aside.rmdir()  # only the unique name is needed
    out_dir.rename(aside)
    try:
        tmp.rename(out_dir)
    except BaseException:
        aside.rename(out_dir)
        raise
    shutil.rmtree(aside, ignore_errors=True)
