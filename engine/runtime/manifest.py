"""The model bundle manifest (contract version 1, see README "Model bundles").

Both sides share this schema: `engine.modeling` writes it, `engine.runtime` reads it. The runtime
takes every number about a model from here; nothing else hard-codes image size, grid or ids.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.runtime.errors import BundleError

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
    null_class_id: int | None = None
    decoding: dict = field(default_factory=lambda: {"steps": 12, "choice_temperature": 4.5})
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

    def class_id(self, name: str | None) -> int | None:
        """Index of a class name (case-insensitive); None -> the null class; unknown -> error."""
        if not self.class_conditional:
            if name is None:
                return None
            raise BundleError(f"model '{self.name}' is unconditional: it has no class '{name}'")
        if name is None:
            return self.null_class_id
        lowered = [c.lower() for c in self.class_names]
        if name.lower() in lowered:
            return lowered.index(name.lower())
        shown = ", ".join(self.class_names[:20])
        raise BundleError(f"unknown class '{name}' for model '{self.name}' (classes: {shown})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_fields(data: dict, where: Path) -> None:
    if data.get("format") != FORMAT:
        raise BundleError(f"{where}: not a MAGE bundle manifest (format is {data.get('format')!r})")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise BundleError(f"{where}: format_version is missing")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{where}: bundle format version {version} is newer than this app understands "
            f"({FORMAT_VERSION}); update MAGE Studio"
        )
    for key, kind in (("name", str), ("image_size", int), ("grid", list),
                      ("codebook_size", int), ("mask_token_id", int), ("files", dict)):
        if not isinstance(data.get(key), kind):
            raise BundleError(f"{where}: field '{key}' is missing or not a {kind.__name__}")
    grid = data["grid"]
    if len(grid) != 2 or data["image_size"] % grid[0] or grid[0] <= 0 or grid[1] <= 0:
        raise BundleError(f"{where}: grid {grid} does not divide image_size {data['image_size']}")
    if data.get("class_names") is not None and data.get("null_class_id") is None:
        raise BundleError(f"{where}: class_names given without null_class_id")


def read_manifest(bundle_dir: str | os.PathLike, verify_hashes: bool = True) -> Manifest:
    """Read and validate `bundle_dir/manifest.json`; with `verify_hashes`, check every file."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / "manifest.json"
    if not bundle_dir.is_dir():
        raise BundleError(f"model folder not found: {bundle_dir}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir} is not a model bundle: manifest.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path} is damaged: {e}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} is damaged: not a JSON object")
    _check_fields(data, path)
    known = {f for f in Manifest.__dataclass_fields__}
    manifest = Manifest(**{k: v for k, v in data.items() if k in known})
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise BundleError(f"{path}: file list lacks {name}")
    for name, digest in manifest.files.items():
        file = bundle_dir / name
        if not file.is_file():
            raise BundleError(f"model file missing: {file}")
        if verify_hashes and sha256_file(file) != digest:
            raise BundleError(f"model file damaged (sha256 does not match the manifest): {file}")
    return manifest


def write_manifest(bundle_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Hash every listed file and write manifest.json atomically."""
    bundle_dir = Path(bundle_dir)
    manifest.files = {name: sha256_file(bundle_dir / name) for name in sorted(manifest.files)}
    tmp = bundle_dir / "manifest.json.tmp"
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, bundle_dir / "manifest.json")
