"""The model bundle manifest (contract version 1, see README "Model bundles").

Both sides share this schema: `engine.modeling` writes it, `engine.runtime` reads it. The runtime
takes every number about a model from here; nothing else hard-codes image size, grid or ids.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.runtime.errors import BundleError
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS

FORMAT = "mage-bundle"
FORMAT_VERSION = 1
REQUIRED_FILES = ("tokenizer_encoder.onnx", "tokenizer_decoder.onnx", "transformer.onnx")


@dataclass
class Manifest:
    name: str
    image_size: int
    grid: list[int]  # [h, w] token grid
    codebook_size: int
    mask_token_id: int
    class_names: list[str] | None = None
    null_class_id: int | None = None  # None with class_names: every run needs a class
    class_synonyms: list[list[str]] | None = None  # optional: other names, one list per class
    decoding: dict = field(
        default_factory=lambda: {
            "steps": DEFAULT_STEPS,
            "choice_temperature": DEFAULT_CHOICE_TEMPERATURE,
        }
    )
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    features_dim: int | None = None
    heads: dict[str, str] = field(default_factory=dict)  # head name -> file in the bundle
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def seq_len(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def downsample(self) -> int:
        """Pixels per token side."""
        return self.image_size // self.grid[0]

    @property
    def class_conditional(self) -> bool:
        return self.class_names is not None

    @property
    def needs_class(self) -> bool:
        """True for a class-only model (classes but no null class): every run needs a class,
        and classifier-free guidance is not available."""
        return self.class_names is not None and self.null_class_id is None

    def class_id(self, name: str | None) -> int | None:
        """Index of a class name (case-insensitive); None -> the null class (an error on a
        class-only model); unknown -> error."""
        if not self.class_conditional:
            if name is None:
                return None
            raise BundleError(f"model '{self.name}' is unconditional: it has no class '{name}'")
        if name is None:
            if self.null_class_id is None:
                raise BundleError(f"model '{self.name}' needs a class: choose one (--class NAME)")
            return self.null_class_id
        names = self.class_names or []
        lowered = [c.lower() for c in names]
        if name.lower() in lowered:
            return lowered.index(name.lower())
        shown = ", ".join(names[:20])
        raise BundleError(f"unknown class '{name}' for model '{self.name}' (classes: {shown})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Sane limits for every number a bundle declares: a manifest is untrusted input, and these
# numbers size what the runtime allocates (an image_size of 8192 alone asks for gigabytes).
MAX_IMAGE_SIZE = 1024  # px per side of the model's square input
MAX_GRID = 128  # tokens per side
MAX_CODEBOOK = 1 << 16
MAX_LOGITS_PER_IMAGE = 1 << 26  # seq_len * codebook_size floats per batch item (256 MB)
MAX_ID = 1 << 30  # mask and null-class ids
MAX_CLASSES = 100_000
MAX_TEXT = 1000  # characters of a name or class name
MAX_SYNONYMS = 64  # other names of one class
# Names and synonyms of all classes together: ImageNet-21k with its WordNet synonyms is about
# 40,000. Each is searched on every key typed in the class picker (off the GUI thread) and
# by `--class`, so this bounds a search to about a second and the index to about 100 MB.
MAX_CLASS_TEXTS = 100_000
MAX_FILES = 1000
MAX_FEATURES = 1 << 16
MAX_STEPS = 200  # decoding steps (the CLI's --steps has the same bound)
MAX_TEMPERATURE = 1000.0
MAX_MANIFEST_BYTES = 16 << 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A file name in `files`: plain names, or one level of sub-folder (heads/NAME.npz).
FILE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
HEAD_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_in(data: dict, key: str, low: int, high: int, where) -> int:
    value = data.get(key)
    if not _is_int(value):
        raise BundleError(
            f"{where}: field '{key}' is missing or not a whole number (got {_shown(value)})"
        )
    assert isinstance(value, int)  # _is_int said so; this tells the type checker
    if not low <= value <= high:
        raise BundleError(f"{where}: field '{key}' is {value}, outside {low}..{high}")
    return value


def _shown(value) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_file_name(name) -> bool:
    """True for a file name a manifest may list: relative, plain parts, no '..', at most one
    sub-folder."""
    if not isinstance(name, str) or len(name) > 200:
        return False
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(
        FILE_PART.match(part) and part not in (".", "..") for part in parts
    )


def _check_fields(data: dict, where: Path) -> None:
    if data.get("format") != FORMAT:
        raise BundleError(
            f"{where}: not a MAGE bundle manifest (format is {_shown(data.get('format'))})"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or not _is_int(version) or version < 1:
        raise BundleError(f"{where}: format_version is missing or not a positive whole number")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{where}: bundle format version {version} is newer than this app understands "
            f"({FORMAT_VERSION}); update MAGE Studio"
        )
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TEXT or not name.isprintable():
        raise BundleError(f"{where}: field 'name' is missing, too long or not printable text")
    if not isinstance(data.get("source", ""), str) or len(data.get("source", "")) > 100_000:
        raise BundleError(f"{where}: field 'source' is not text")
    size = _int_in(data, "image_size", 8, MAX_IMAGE_SIZE, where)
    grid = data.get("grid")
    if (
        not isinstance(grid, list)
        or len(grid) != 2
        or not all(_is_int(g) for g in grid)
        or not all(1 <= g <= MAX_GRID for g in grid)
    ):
        raise BundleError(
            f"{where}: field 'grid' must be two whole numbers [h, w] in "
            f"1..{MAX_GRID} (got {_shown(grid)})"
        )
    if grid[0] != grid[1] or size % grid[0]:
        raise BundleError(f"{where}: grid {grid} does not divide image_size {size}")
    codebook = _int_in(data, "codebook_size", 2, MAX_CODEBOOK, where)
    if grid[0] * grid[1] * codebook > MAX_LOGITS_PER_IMAGE:
        raise BundleError(
            f"{where}: grid {grid} with codebook_size {codebook} is over the safety limit"
        )
    mask_id = _int_in(data, "mask_token_id", 0, MAX_ID, where)
    if mask_id < codebook:
        raise BundleError(
            f"{where}: mask_token_id {mask_id} is a real code id (codebook_size "
            f"{codebook}): it must be {codebook} or more"
        )
    names = data.get("class_names")
    null_id = data.get("null_class_id")
    if names is not None and (
        not isinstance(names, list)
        or not 1 <= len(names) <= MAX_CLASSES
        or not all(_shown_text(n) for n in names)
    ):
        raise BundleError(
            f"{where}: field 'class_names' must be a list of 1..{MAX_CLASSES} "
            "non-empty printable texts, or null"
        )
    if null_id is not None:
        null_id = _int_in(data, "null_class_id", 0, MAX_ID, where)
        if names is not None and null_id < len(names):
            raise BundleError(
                f"{where}: null_class_id {null_id} is a real class id ({len(names)} classes)"
            )
    _check_synonyms(data.get("class_synonyms"), names, where)
    if data.get("features_dim") is not None:
        _int_in(data, "features_dim", 1, MAX_FEATURES, where)
    _check_decoding(data.get("decoding", {}), where)
    files = data.get("files")
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        raise BundleError(f"{where}: field 'files' is missing or not an object of names")
    for fname, digest in files.items():
        if not check_file_name(fname):
            raise BundleError(
                f"{where}: file name {_shown(fname)} is not a plain name inside the bundle folder"
            )
        if not isinstance(digest, str) or not SHA256.match(digest):
            raise BundleError(f"{where}: sha256 of {fname} is not 64 hex digits")
    heads = data.get("heads", {})
    if not isinstance(heads, dict) or len(heads) > MAX_FILES:
        raise BundleError(f"{where}: field 'heads' must be an object (name -> file)")
    for head, fname in heads.items():
        if not HEAD_KEY.match(head) or not isinstance(fname, str) or fname not in files:
            raise BundleError(f"{where}: head {_shown(head)} names a file the bundle does not list")


def _shown_text(value) -> bool:
    """A class name or synonym the app can show: a non-empty text of at most MAX_TEXT
    characters with no control, format or bidi characters (U+202E would show "gnp.exe" as
    "exe.png" in the class picker)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT and value.isprintable()


def _check_synonyms(synonyms, names, where) -> None:
    """`class_synonyms`: null, or one list of other names per class (texts, within limits)."""
    if synonyms is None:
        return
    if names is None:
        raise BundleError(f"{where}: class_synonyms given without class_names")
    if not isinstance(synonyms, list) or len(synonyms) != len(names):
        raise BundleError(
            f"{where}: field 'class_synonyms' must be a list of {len(names)} lists "
            "(one per class), or null"
        )
    total = len(names)
    for i, entry in enumerate(synonyms):
        if (
            not isinstance(entry, list)
            or len(entry) > MAX_SYNONYMS
            or not all(_shown_text(n) for n in entry)
        ):
            raise BundleError(
                f"{where}: class_synonyms of class {i} must be a list of at most "
                f"{MAX_SYNONYMS} non-empty printable texts"
            )
        total += len(entry)
        if total > MAX_CLASS_TEXTS:
            raise BundleError(
                f"{where}: class_names and class_synonyms hold more than {MAX_CLASS_TEXTS:,} "
                "names together (too many to search)"
            )


def _check_decoding(decoding, where) -> None:
    if not isinstance(decoding, dict):
        raise BundleError(f"{where}: field 'decoding' must be an object")
    if "steps" in decoding:
        _int_in(decoding, "steps", 1, MAX_STEPS, f"{where}: decoding")
    for key, low, strict in (("choice_temperature", 0.0, False), ("sample_temperature", 0.0, True)):
        if key not in decoding:
            continue
        value = decoding[key]
        if (
            not _is_number(value)
            or value > MAX_TEMPERATURE
            or value < low
            or (strict and value == low)
        ):
            raise BundleError(
                f"{where}: decoding {key} must be a number in "
                f"{'(' if strict else '['}{low:g}, {MAX_TEMPERATURE:g}] "
                f"(got {_shown(value)})"
            )


def bundle_file(bundle_dir: Path, name: str) -> Path:
    """The path of a file the manifest lists, refused unless it is a regular file inside the
    bundle folder (no symlink or sub-folder leads outside)."""
    if not check_file_name(name):
        raise BundleError(
            f"{bundle_dir}: file name {_shown(name)} is not a plain name inside the bundle folder"
        )
    file = bundle_dir / name
    try:
        real, root = file.resolve(strict=True), bundle_dir.resolve(strict=True)
        is_regular = stat.S_ISREG(os.stat(real).st_mode)
    except (OSError, RuntimeError):
        raise BundleError(f"model file missing: {file}") from None
    if root not in real.parents:
        raise BundleError(f"model file {file} points outside the bundle folder")
    if not is_regular:
        raise BundleError(f"model file {file} is not a regular file")
    return file


def check_name(name) -> None:
    """Refuse (BundleError, one line) a model name that a manifest may not carry: empty, over
    MAX_TEXT characters, or with control or other unprintable characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TEXT or not name.isprintable():
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise BundleError(f"model name {shown} is empty, too long or not printable text")


def check_manifest(manifest: Manifest, where: str | os.PathLike = "the model") -> None:
    """Refuse (BundleError, one line) a manifest that read_manifest would refuse: every field
    and limit (name, sizes, ids, classes, decoding). Writers call it before writing anything;
    the file list is checked by write_manifest's own hashing."""
    data = asdict(manifest)
    data["files"] = {name: "0" * 64 for name in manifest.files or REQUIRED_FILES}
    _check_fields(data, Path(where))


def read_manifest(bundle_dir: str | os.PathLike, verify_hashes: bool = True) -> Manifest:
    """Read and validate `bundle_dir/manifest.json`; with `verify_hashes`, check every file."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / "manifest.json"
    if not bundle_dir.is_dir():
        raise BundleError(f"model folder not found: {bundle_dir}")
    data = _load_json(path, bundle_dir)
    _check_fields(data, path)
    known = {f for f in Manifest.__dataclass_fields__}
    manifest = Manifest(**{k: v for k, v in data.items() if k in known})
    if manifest.heads is None:
        manifest.heads = {}
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise BundleError(f"{path}: file list lacks {name}")
    for name, digest in manifest.files.items():
        file = bundle_file(bundle_dir, name)
        if verify_hashes and sha256_file(file) != digest:
            raise BundleError(f"model file damaged (sha256 does not match the manifest): {file}")
    return manifest


def _load_json(path: Path, bundle_dir: Path) -> dict:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{path} is damaged: not a regular file")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is damaged: {info.st_size} bytes is far too large")
        with open(path, encoding="utf-8") as stream:
            data = json.loads(stream.read(MAX_MANIFEST_BYTES + 1))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir} is not a model bundle: manifest.json is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise BundleError(f"{path} is damaged: {first}") from None
    except RecursionError:
        raise BundleError(f"{path} is damaged: nested too deeply") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} is damaged: not a JSON object")
    return data


def is_bundle_folder(folder: str | os.PathLike) -> bool:
    """True when `folder` holds a manifest.json of format mage-bundle (files not checked)."""
    try:
        data = _load_json(Path(folder) / "manifest.json", Path(folder))
    except BundleError:
        return False
    return data.get("format") == FORMAT


TEMP_SUFFIX = ".tmp"


def temp_file_for(target: Path) -> tuple[int, Path]:
    """A new file created exclusively beside `target` with a unique name
    (".NAME.XXXXXXXX.tmp"), so a planted file or symlink can never redirect the write."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    return fd, Path(name)


def replace_file(temp: Path, target: Path) -> None:
    """Move a finished temp file over `target`, keeping the old file's permission bits."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    os.chmod(temp, mode)
    os.replace(temp, target)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_manifest(bundle_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Hash every listed file and write manifest.json atomically."""
    bundle_dir = Path(bundle_dir)
    manifest.files = {name: sha256_file(bundle_dir / name) for name in sorted(manifest.files)}
    target = bundle_dir / "manifest.json"
    fd, tmp = temp_file_for(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(manifest.to_json())
        replace_file(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
