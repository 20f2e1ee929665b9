"""`python main.py download NAME`: fetch an official checkpoint on request, then import it.

The files go to MODELS_DIR/.downloads/NAME/ (each as FILE.part until it is complete and
checked); Ctrl+C or a dropped connection leaves the .part, and the same command resumes it.
The import writes the bundle MODELS_DIR/NAME and then removes the raw files. A failed import
sends the files whose completeness only the import can judge (no published size or checksum)
back to be fetched again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.console import safe_text
from engine.runtime import official_models as om
from engine.runtime.downloads import GDOWN_HINT, DownloadCancelled, gdown_available, human_size
from engine.runtime.errors import MageError
from engine.runtime.locations import user_models_dir

CATALOG = om.OFFICIAL  # the models `download` offers (tests swap in their own)


def add_command(sub) -> None:
    p = sub.add_parser(
        "download",
        help="download an official checkpoint (on request), resumable, and import it",
        description="Download an official model's files (resuming an interrupted download), "
        "check them, and import them into the user models folder. Nothing is downloaded "
        "without this command. See --list for the models, their sizes and licences.",
    )
    p.add_argument("name", nargs="?", help="the model to get (see --list)")
    p.add_argument("--list", action="store_true", help="list the official models and exit")
    p.add_argument(
        "--models-dir",
        type=Path,
        help=f"where the imported model goes (default: {user_models_dir()})",
    )
    p.add_argument("--yes", action="store_true", help="do not ask before downloading")
    p.add_argument(
        "--keep-files",
        action="store_true",
        help="keep the downloaded checkpoint files after the import",
    )
    p.set_defaults(handler=cmd_download)


def _say(line: str) -> None:
    print(safe_text(line), flush=True)


def list_models(models_dir: Path) -> None:
    for m in CATALOG:
        state = "  [installed]" if om.installed(models_dir, m) else ""
        _say(f"{m.name:24} {m.size_text():>12}  {m.title}{state}")
        _say(f"{'':24} licence: {m.licence}")
        _say(f"{'':24} source: {m.source}")
        _say(f"{'':24} can do: {'; '.join(m.abilities)}")


class _Bar:
    """Bytes downloaded, on one line of stderr."""

    def __init__(self):
        self.last = -1

    def __call__(self, name: str, done: int, total: int) -> None:
        frac = done / total if total else 0.0
        step = int(frac * 200)
        if step == self.last and done < total:
            return
        self.last = step
        bar = "#" * int(min(frac, 1.0) * 24)
        sys.stderr.write(
            f"\r{name[:32]:32} [{bar:<24}] {human_size(done)} / {human_size(total)}   "
        )
        sys.stderr.flush()


def _confirm(model: om.OfficialModel, left: int) -> bool:
    question = f"Download {human_size(left)} for {model.name}? [y/N] "
    if not sys.stdin or not sys.stdin.isatty():
        raise MageError(
            f"{model.name} needs {human_size(left)} of downloads: add --yes to confirm "
            "(no terminal to ask)"
        )
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_download(args: argparse.Namespace) -> int:
    models_dir = Path(args.models_dir) if args.models_dir else user_models_dir()
    if args.list:
        list_models(models_dir)
        return 0
    if not args.name:
        raise MageError("name a model to download (see download --list)")
    model = om.find_model(args.name, CATALOG)
    target = om.bundle_dir(models_dir, model)
    if om.installed(models_dir, model):
        _say(f"{model.name} is already installed")
        _say(str(target))
        return 0
    if target.exists():
        raise MageError(f"{target} exists but is not a model bundle: move it away first")
    if model.needs_gdown and not gdown_available():
        raise MageError(
            f"{model.name} is on Google Drive, whose large-file confirmation needs the gdown "
            f"package: {GDOWN_HINT}"
        )
    _say(f"{model.title}: {model.size_text()}")
    _say(f"licence: {model.licence}")
    _say(f"source: {model.source}")
    left = om.bytes_to_fetch(models_dir, model)
    if left < model.download_size:
        _say(f"resuming: {human_size(model.download_size - left)} already here")
    if left and not args.yes and not _confirm(model, left):
        _say("not downloaded")
        return 1
    bar = _Bar()
    where = om.downloads_dir(models_dir, model)
    try:
        files = om.fetch_files(model, models_dir, bar, say=lambda line: _say(f"\n{line}"))
    except (DownloadCancelled, KeyboardInterrupt):
        print(
            f"\ndownload interrupted; the partial files in {where} resume with the same command",
            file=sys.stderr,
        )
        return 130
    except MageError:
        if bar.last >= 0:
            sys.stderr.write("\n")  # the error's line starts on a line of its own
        raise
    sys.stderr.write("\n")
    _say("files complete and checked; importing ...")
    try:
        run_import(model, files, target)
    except MageError as e:
        after = om.after_failed_import(models_dir, model)
        raise MageError(f"import failed: {e} ({after})") from None
    if not args.keep_files:
        om.remove_downloads(models_dir, model)
    _say(f"installed {model.name}")
    _say(str(target))
    return 0


def run_import(model: om.OfficialModel, files: dict[str, Path], target: Path) -> Path:
    """Import the downloaded files into the bundle folder `target` (in this process)."""
    if model.importer == "bundle":
        return om.install_bundle(files, target)
    if model.importer == "import-mage":
        from engine.importing.mage import import_mage

        return import_mage(
            files["checkpoint"], target, vqgan=files.get("vqgan"), name=model.name, say=_say
        )
    if model.importer == "import-maskgit":
        from engine.importing.maskgit import import_maskgit

        return import_maskgit(
            files["tokenizer"], files["transformer"], target, name=model.name, say=_say
        )
    raise MageError(f"{model.name}: unknown importer '{model.importer}'")
