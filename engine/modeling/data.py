"""Training images: loading (folder or pack), a fixed validation split, step-seeded augmentation.

Every image is held in memory as uint8 on the training device, padded into one tensor, and
batches are cut from it with one `grid_sample` call (random multi-scale square crop + flip +
resize). On a GPU this keeps the model fed without a JPEG-decoding DataLoader; on the CPU it is
just as simple and keeps both paths identical.

Determinism: the images, crops and flips of a step are a pure function of (seed, step) for the
*global* batch. A distributed rank takes its slice of that batch, so N processes see exactly
the images one process would (see engine/modeling/training/batches.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
VAL_FRACTION = 0.05
MIN_SCALE = 0.25  # smallest crop side, as a fraction of the image's short side
MAX_ASPECT = 3.0  # longer side kept at most this many short sides (limits padding memory)


@dataclass
class ImageSet:
    images: torch.Tensor  # (N,3,H,W) uint8, each image top-left, zero padded
    sizes: torch.Tensor  # (N,2) int64 real (h, w) of each image
    labels: torch.Tensor  # (N,) int64 class index (0 when unconditional)
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def to(self, device) -> ImageSet:
        return ImageSet(
            self.images.to(device), self.sizes.to(device), self.labels.to(device), self.names
        )


@dataclass
class Dataset:
    train: ImageSet
    val: ImageSet
    class_names: list[str]  # [] = unconditional
    source: str

    def summary(self) -> dict:
        counts: dict[str, dict[str, int] | int] = {}
        for name, labels in (("train", self.train.labels), ("val", self.val.labels)):
            if self.class_names:
                counts[name] = {c: int((labels == i).sum()) for i, c in enumerate(self.class_names)}
            else:
                counts[name] = len(labels)
        return {
            "source": self.source,
            "train_images": len(self.train),
            "val_images": len(self.val),
            "classes": self.class_names,
            "counts": counts,
        }


# -- loading ------------------------------------------------------------------------------------


def load_data(path: str | Path, image_size: int) -> Dataset:
    """A folder of images (sub-folders = classes) or a pack file (.npz from pack_photos.py).

    Images are resized so the short side is at most 2 * image_size (crops then never need more
    than 2x down-sampling, which the crop sampler anti-aliases)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training data not found: {path}")
    max_short = 2 * image_size
    val_names: set[str] | None
    if path.is_file():
        records, class_names, val_names = _read_pack(path)
    else:
        records, class_names = _read_folder(path)
        val_names = _split_json(path)
    if not records:
        raise ValueError(f"no images found in {path}")
    if val_names is None:
        val_names = {name for name, _, _ in records if _hash_val(name)}
    train = [r for r in records if r[0] not in val_names]
    val = [r for r in records if r[0] in val_names]
    if not val:  # tiny sets: still hold one image out so PSNR is measured on unseen data
        train, val = records[1:], records[:1]
    return Dataset(_stack(train, max_short), _stack(val, max_short), class_names, str(path))


def _read_folder(root: Path) -> tuple[list, list[str]]:
    """(relative name, class index, HxWx3 uint8) for every image; sub-folders are classes."""
    from PIL import Image

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    classes = sorted(
        {p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1}
    )
    if any(len(p.relative_to(root).parts) == 1 for p in files):
        classes = []  # loose files at the top: treat the folder as unconditional
    records = []
    for p in files:
        rel = p.relative_to(root).as_posix()
        label = classes.index(rel.split("/")[0]) if classes else 0
        with Image.open(p) as im:
            records.append((rel, label, np.asarray(im.convert("RGB"))))
    return records, classes


def _split_json(root: Path) -> set[str] | None:
    """Validation names from split.json: {"val": [...]} (or "test"), or {name: "train"|"val"}."""
    path = root / "split.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    for key in ("val", "validation", "test", "heldout", "held_out"):
        if isinstance(data.get(key), list):
            return {str(n) for n in data[key]}
    if all(isinstance(v, str) for v in data.values()):
        return {k for k, v in data.items() if v.lower() in ("val", "validation", "test")}
    raise ValueError(f"{path}: unrecognised split format")


def _hash_val(name: str) -> bool:
    """A fixed ~5% held out by name hash: stable across runs, machines and added images."""
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < VAL_FRACTION


def _read_pack(path: Path) -> tuple[list, list[str], set[str]]:
    """Records from the pack written by scripts/pack_photos.py, read with its own `load_pack`
    (samples of (PIL image, class index, is_val); names come from the pack's path list)."""
    samples, class_names = _pack_loader()(path)
    with np.load(path, allow_pickle=False) as z:
        names = (
            json.loads(z["paths"].tobytes().decode("utf-8"))
            if "paths" in z.files
            else [f"{path.name}/{i}" for i in range(len(samples))]
        )
    records = [
        (names[i], label if class_names else 0, np.asarray(im))
        for i, (im, label, _) in enumerate(samples)
    ]
    val = {names[i] for i, (_, _, is_val) in enumerate(samples) if is_val}
    return records, [str(c) for c in class_names], val


def _pack_loader():
    script = Path(__file__).resolve().parents[2] / "scripts" / "pack_photos.py"
    spec = importlib.util.spec_from_file_location("pack_photos", script)
    if spec is None or spec.loader is None or not script.is_file():
        raise FileNotFoundError(f"{script} is needed to read pack files")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_pack


def _fit(img: np.ndarray, max_short: int) -> np.ndarray:
    """Resize (area filter) so the short side <= max_short; centre-cut very long sides."""
    from PIL import Image

    h, w = img.shape[:2]
    s = min(h, w)
    if s > max_short:
        scale = max_short / s
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
        img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BOX))
    s = min(h, w)
    lh, lw = min(h, int(MAX_ASPECT * s)), min(w, int(MAX_ASPECT * s))
    y, x = (h - lh) // 2, (w - lw) // 2
    return img[y : y + lh, x : x + lw]


def _stack(records: list, max_short: int) -> ImageSet:
    imgs = [_fit(img, max_short) for _, _, img in records]
    hmax, wmax = max(i.shape[0] for i in imgs), max(i.shape[1] for i in imgs)
    out = torch.zeros(len(imgs), 3, hmax, wmax, dtype=torch.uint8)
    for k, img in enumerate(imgs):
        out[k, :, : img.shape[0], : img.shape[1]] = torch.from_numpy(img.copy()).permute(2, 0, 1)
    sizes = torch.tensor([i.shape[:2] for i in imgs], dtype=torch.long).reshape(-1, 2)
    labels = torch.tensor([r[1] for r in records], dtype=torch.long)
    return ImageSet(out, sizes, labels, [r[0] for r in records])


# -- step-seeded sampling -------------------------------------------------------------------------


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, step, stream)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 16 + stream)


def batch_indices(seed: int, step: int, batch: int, n: int) -> torch.Tensor:
    """Image indices of the global batch of `step`: consecutive slices of per-epoch shuffles,
    so every image is seen once per epoch, and resuming at any step gives the same stream."""
    start = step * batch
    out: list[int] = []
    while len(out) < batch:
        epoch, offset = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.extend(perm[offset : offset + batch - len(out)].tolist())
    return torch.tensor(out, dtype=torch.long)


@dataclass
class CropParams:
    index: torch.Tensor  # (B,) image index
    scale: torch.Tensor  # (B,) crop side / short side, in [MIN_SCALE, 1]
    pos: torch.Tensor  # (B,2) crop position (y, x) as a fraction of the free room
    flip: torch.Tensor  # (B,) bool

    def slice(self, lo: int, hi: int) -> CropParams:
        return CropParams(self.index[lo:hi], self.scale[lo:hi], self.pos[lo:hi], self.flip[lo:hi])


def random_params(seed: int, step: int, batch: int, n: int) -> CropParams:
    g = step_generator(seed, step, stream=0)
    return CropParams(
        index=batch_indices(seed, step, batch, n),
        scale=MIN_SCALE + (1 - MIN_SCALE) * torch.rand(batch, generator=g),
        pos=torch.rand(batch, 2, generator=g),
        flip=torch.rand(batch, generator=g) < 0.5,
    )


def center_params(n: int) -> CropParams:
    """The largest centred square of every image, unflipped (validation)."""
    return CropParams(
        torch.arange(n), torch.ones(n), torch.full((n, 2), 0.5), torch.zeros(n, dtype=torch.bool)
    )


def crops(data: ImageSet, params: CropParams, size: int) -> torch.Tensor:
    """Cut the square crops described by `params` -> (B,3,size,size) float in [0,1].

    Samples at 2x the output size with bilinear interpolation and averages 2x2: enough
    anti-aliasing, because stored images are at most 2x the output size (see load_data)."""
    dev = data.images.device
    idx = params.index.to(dev)
    hw = data.sizes[idx].float()  # (B,2) real h, w
    canvas = torch.tensor(data.images.shape[2:], device=dev, dtype=torch.float)  # (2,) H, W
    side = params.scale.to(dev) * hw.min(1).values  # (B,) crop side in pixels
    origin = params.pos.to(dev) * (hw - side[:, None])  # (B,2) top-left y, x
    centre = (2 * origin + side[:, None]) / canvas - 1  # (B,2) normalised centre
    half = side[:, None] / canvas  # (B,2) normalised half size
    sx = torch.where(params.flip.to(dev), -half[:, 1], half[:, 1])
    theta = torch.zeros(len(idx), 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sx, centre[:, 1]
    theta[:, 1, 1], theta[:, 1, 2] = half[:, 0], centre[:, 0]
    grid = F.affine_grid(theta, [len(idx), 3, 2 * size, 2 * size], align_corners=False)
    src = data.images[idx].float() / 255
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return F.avg_pool2d(out, 2).clamp(0, 1)
