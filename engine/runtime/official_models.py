"""The official checkpoints that MAGE Studio can fetch on request, and how each is imported.

Nothing here touches the network: this is the list the CLI (`main.py download`) and the
editor (Models > Get official models...) show, with sizes, licences and sources. Where the
publisher gives no exact size or checksum, the size shown is an estimate from the parameter
count (float32 weights), the download is checked against the size the server announces, and
the importer checks every tensor's name and shape.

Import kinds:
- "import-mage": `main.py import-mage CHECKPOINT --vqgan TOKENIZER -o DIR` (PyTorch needed)
- "import-maskgit": `main.py import-maskgit TOKENIZER TRANSFORMER -o DIR` (PyTorch needed)
- "bundle": the files are a ready model bundle; installing checks its manifest and hashes
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.runtime.downloads import (
    DownloadError,
    RemoteFile,
    check_free_space,
    download_file,
    human_size,
    part_path,
    regular_size,
)
from engine.runtime.errors import MageError
from engine.runtime.workdirs import sweep, work_dir

DRIVE = "https://drive.google.com/uc?export=download&id="
MASKGIT = "https://storage.googleapis.com/maskgit-public/checkpoints/"
MAGE_REPO = "https://github.com/LTH14/mage"
MASKGIT_REPO = "https://github.com/google-research/maskgit"

MAGE_LICENCE = (
    "MIT (the licence of the MAGE repository, which publishes the weights; its README states "
    "no separate terms for them)"
)
MASKGIT_LICENCE = (
    "no licence stated: the authors give none for the weights (the code is Apache-2.0; "
    "maskgit issue #2 asks and is unanswered)"
)


@dataclass(frozen=True)
class OfficialModel:
    name: str  # for the CLI: `main.py download NAME`
    title: str
    files: dict[str, RemoteFile]  # role -> file; roles are the importer's arguments
    importer: str  # "import-mage", "import-maskgit" or "bundle"
    licence: str
    source: str
    abilities: tuple[str, ...]
    notes: str = ""
    bundle_size: int = 0  # room the imported bundle needs (bytes, estimate)

    @property
    def download_size(self) -> int:
        return sum(f.expected_size for f in self.files.values())

    @property
    def exact_size(self) -> bool:
        return all(f.size is not None for f in self.files.values())

    def size_text(self) -> str:
        text = human_size(self.download_size)
        return text if self.exact_size else f"about {text}"

    @property
    def needs_gdown(self) -> bool:
        return any(f.drive for f in self.files.values())

    def import_argv(self, paths: dict[str, Path], out_dir: Path) -> list[str]:
        """The `main.py` arguments that import the downloaded files into `out_dir`."""
        p = {role: str(path) for role, path in paths.items()}
        if self.importer == "import-mage":
            argv = ["import-mage", p["checkpoint"]]
            if "vqgan" in p:
                argv += ["--vqgan", p["vqgan"]]
        elif self.importer == "import-maskgit":
            argv = ["import-maskgit", p["tokenizer"], p["transformer"]]
        else:
            raise MageError(f"{self.name}: '{self.importer}' is not a command-line importer")
        return [*argv, "-o", str(out_dir), "--name", self.name]


def _drive(name: str, file_id: str, approx: int) -> RemoteFile:
    return RemoteFile(name, DRIVE + file_id, approx_size=approx, drive=True)


# float32 parameters x 4 bytes (mage-reference.md section 1; maskgit-reference.md section 1)
_VQGAN = _drive("vqgan_jax_strongaug.ckpt", "13S_unB87n6KKuuMdyMnyExW0G1kplTbP", 218_100_000)
_MAGE_ABILITIES = (
    "removal and refill of painted areas (unconditional)",
    "unconditional generation",
    "recognition features (few-shot heads; no ImageNet class head)",
)

# MaskGIT's bundles are class-only: every run names a class (no unconditional removal)
_MASKGIT_ABILITIES = (
    "class generation (1000 ImageNet classes)",
    "refill a painted area as a chosen class",
)

OFFICIAL: tuple[OfficialModel, ...] = (
    OfficialModel(
        name="mage-vit-b",
        title="MAGE ViT-B (with the VQGAN tokenizer)",
        files={
            "checkpoint": _drive(
                "mage-vitb-1600.pth", "1Q6tbt3vF0bSrv5sPrjpFu8ksG3vTsVX2", 804_000_000
            ),
            "vqgan": _VQGAN,
        },
        importer="import-mage",
        licence=MAGE_LICENCE,
        source=f"{MAGE_REPO} (Google Drive links in its README)",
        abilities=_MAGE_ABILITIES,
        notes="FID 11.1 unconditional (README); 256 px, 16x16 tokens",
        # measured: an imported ViT-B bundle is 0.81 GB (one copy of the transformer's and of
        # the tokenizer's weights, shared by their graphs)
        bundle_size=900_000_000,
    ),
    OfficialModel(
        name="mage-vit-l",
        title="MAGE ViT-L (with the VQGAN tokenizer)",
        files={
            "checkpoint": _drive(
                "mage-vitl-1600.pth", "15xBPa8EIa0IRUiRYtXiYOC9JZVyMIFrB", 1_858_000_000
            ),
            "vqgan": _VQGAN,
        },
        importer="import-mage",
        licence=MAGE_LICENCE,
        source=f"{MAGE_REPO} (Google Drive links in its README)",
        abilities=_MAGE_ABILITIES,
        notes="FID 9.10 unconditional (README); 256 px, 16x16 tokens; slower than ViT-B",
        bundle_size=2_000_000_000,  # the checkpoint's weights once, as for ViT-B
    ),
    OfficialModel(
        name="maskgit-imagenet-256",
        title="MaskGIT ImageNet 256 (class-conditional, 1000 classes)",
        files={
            "tokenizer": RemoteFile(
                "tokenizer_imagenet256_checkpoint",
                MASKGIT + "tokenizer_imagenet256_checkpoint",
                approx_size=218_068_642,
            ),
            "transformer": RemoteFile(
                "maskgit_imagenet256_checkpoint",
                MASKGIT + "maskgit_imagenet256_checkpoint",
                approx_size=689_843_608,
            ),
        },
        importer="import-maskgit",
        licence=MASKGIT_LICENCE,
        source=f"{MASKGIT_REPO} (files in the public maskgit-public storage bucket)",
        abilities=_MASKGIT_ABILITIES,
        notes="FID 6.06 class-conditional (README); 256 px, 16x16 tokens",
        # the 690 MB of transformer and 218 MB of tokenizer weights, once each
        bundle_size=1_000_000_000,
    ),
    OfficialModel(
        name="maskgit-imagenet-512",
        title="MaskGIT ImageNet 512 (class-conditional, 1000 classes)",
        files={
            "tokenizer": RemoteFile(
                "tokenizer_imagenet512_checkpoint",
                MASKGIT + "tokenizer_imagenet512_checkpoint",
                approx_size=218_068_642,
            ),
            "transformer": RemoteFile(
                "maskgit_imagenet512_checkpoint",
                MASKGIT + "maskgit_imagenet512_checkpoint",
                approx_size=692_202_904,
            ),
        },
        importer="import-maskgit",
        licence=MASKGIT_LICENCE,
        source=f"{MASKGIT_REPO} (files in the public maskgit-public storage bucket)",
        abilities=_MASKGIT_ABILITIES,
        notes="FID 7.32 class-conditional (README); 512 px, 32x32 tokens: four times the "
        "tokens of the 256 model, so each step is several times slower",
        bundle_size=1_000_000_000,
    ),
)


def find_model(name: str, catalog: tuple[OfficialModel, ...] = OFFICIAL) -> OfficialModel:
    for model in catalog:
        if model.name == name.strip().lower():
            return model
    names = ", ".join(m.name for m in catalog)
    raise MageError(f"no official model named '{name}' (choose one of: {names})")


def downloads_dir(models_dir: Path, model: OfficialModel) -> Path:
    """Where `model`'s raw files (and their `.part` files) wait for the import."""
    return Path(models_dir) / ".downloads" / model.name


def bundle_dir(models_dir: Path, model: OfficialModel) -> Path:
    return Path(models_dir) / model.name


def installed(models_dir: Path, model: OfficialModel) -> bool:
    return (bundle_dir(models_dir, model) / "manifest.json").is_file()


def bytes_to_fetch(models_dir: Path, model: OfficialModel) -> int:
    """Bytes still to download: the expected sizes less what finished files and `.part`
    files already hold."""
    folder = downloads_dir(models_dir, model)
    left = 0
    for remote in model.files.values():
        target = folder / remote.name
        if regular_size(target):
            continue
        left += max(remote.expected_size - regular_size(part_path(target)), 0)
    return left


def plain_folder(folder: Path) -> Path:
    """Create `folder` (and its parents) and refuse it, in one line, when it or the
    `.downloads` folder above it is a link or not a folder: downloads are written and deleted
    there, so they must not lead anywhere else."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder):
        if path.is_symlink() or not path.is_dir():
            raise DownloadError(
                f"{path} is not a plain folder (a link or a file): move it away and run again"
            )
    return folder


def fetch_files(
    model: OfficialModel,
    models_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    say: Callable[[str], None] | None = None,
    **options,
) -> dict[str, Path]:
    """Download (or resume) every file of `model` after checking that the disk has room for
    the files and the bundle built from them; returns role -> file. `progress(file name,
    bytes done over all files, bytes expected over all files)`."""
    folder = plain_folder(downloads_dir(models_dir, model))
    sweep(models_dir)  # work folders left by an import that was killed
    check_free_space(
        folder,
        bytes_to_fetch(models_dir, model) + model.bundle_size,
        f"{model.name} ({model.size_text()} to download, then the imported model)",
    )
    sizes = {role: f.expected_size for role, f in model.files.items()}
    paths = {}
    finished = 0
    for role, remote in model.files.items():
        target = folder / remote.name

        def report(done: int, total: int | None, role=role, name=remote.name, base=finished):
            if total:
                sizes[role] = total
            if progress:
                progress(name, base + done, sum(sizes.values()))

        paths[role] = download_file(
            remote, target, report, cancel, say=say, reserve=model.bundle_size, **options
        )
        sizes[role] = paths[role].stat().st_size
        finished += sizes[role]
        if progress:
            progress(remote.name, finished, sum(sizes.values()))
    return paths


def remove_downloads(models_dir: Path, model: OfficialModel) -> None:
    """Delete the raw files once the model is imported (the bundle holds all it needs)."""
    folder = downloads_dir(models_dir, model)
    if not folder.is_symlink() and not folder.parent.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def send_back_unverified(models_dir: Path, model: OfficialModel) -> list[str]:
    """After a failed import: remove the downloaded files whose completeness only the import
    could judge (no published size or checksum), so the next try fetches them again; returns
    their names. Files proved complete by size or sha256 stay."""
    folder = downloads_dir(models_dir, model)
    if folder.is_symlink() or folder.parent.is_symlink():
        return []
    removed = []
    for remote in model.files.values():
        if remote.verifiable:
            continue
        path = folder / remote.name
        if os.path.lexists(path) and not path.is_dir():
            path.unlink()
            removed.append(remote.name)
    return removed


def after_failed_import(models_dir: Path, model: OfficialModel) -> str:
    """After a failed import: send back the files only the import could judge (see
    send_back_unverified); says what became of the files."""
    where = downloads_dir(models_dir, model)
    removed = send_back_unverified(models_dir, model)
    if not removed:
        return f"the downloaded files stay in {where}"
    kept = [r.name for r in model.files.values() if r.name not in removed]
    text = f"{', '.join(removed)} will be downloaded again on the next try"
    return text + (f"; the other files stay in {where}" if kept else "")


def install_bundle(files: dict[str, Path], out_dir: Path, overwrite: bool = False) -> Path:
    """The "bundle" import: copy a downloaded bundle's files into `out_dir` and check them
    against its manifest (format, fields and every file's sha256) before it is used."""
    from engine.runtime.manifest import read_manifest

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise MageError(f"{out_dir} already exists (choose another folder or overwrite)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep(out_dir.parent)
    with work_dir(out_dir) as temp:
        for path in files.values():
            shutil.copyfile(path, temp / Path(path).name)
        read_manifest(temp, verify_hashes=True)
        temp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(temp, out_dir)
    return out_dir
