"""Recognition with a frozen MAGE encoder: image features, linear probes and few-shot heads.

MAGE's claim is one model for generation and recognition: the encoder output averaged over the
image tokens (`features.onnx`) is a general image descriptor. This module turns images into those
features and fits small classifiers on top of them, all in NumPy:

* linear probe (MAGE paper, arXiv 2211.09117, linear probing; github.com/LTH14/mage,
  main_linprobe.py): features standardised with the training set's
  mean/std (MAGE's non-affine BatchNorm), then a softmax classifier trained with Adam and weight
  decay;
* few-shot (K = 1..10 examples per class): nearest centroid on L2-normalised standardised
  features with cosine similarity and a temperature softmax; with K >= 5, logistic regression
  when cross-validation says it is better.

A `Head` is saved as a small .npz (no pickles) holding the class names, weights, mean/std and the
model it was made for, so a head for another model is refused with a clear message.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from engine.runtime.errors import BundleError, MageError, OutputError
from engine.runtime.manifest import replace_file, temp_file_for

HEAD_FORMAT = "mage-head"
HEAD_VERSION = 1
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
HEAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# A top probability under this reads "not sure" when a head has no threshold of its own. An
# uncalibrated probe is overconfident (the default head: 86% right on its training photos, 42%
# on held-out ones), so without a fitted threshold only a clear majority counts as an answer.
NOT_SURE_BELOW = 0.7


class HeadError(MageError):
    """A classifier head is missing, damaged, or made for another model."""


# -- images -> features -------------------------------------------------------------------------


def preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H,W,3] -> float32 [3,size,size] in [0,1]: short side to `size` (bicubic), centre
    crop (the linear-probe evaluation transform, without MAGE's extra 292/256 margin)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MageError(f"expected an RGB image [H,W,3], got shape {tuple(rgb.shape)}")
    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0  # (3, S, S)


def image_features(
    bundle,
    images: Iterable[np.ndarray | Callable[[], np.ndarray]],
    batch_size: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Features of RGB images.

    Args:
        bundle: a loaded `Bundle` with features.onnx.
        images: uint8 [H,W,3] arrays (any size), or callables returning one (loaded lazily, so
            a long list of files never sits in memory at once).
        batch_size: images per model call.
        on_progress: called with the number of images done after each batch.

    Returns:
        float32 [N, D].
    """
    if not (bundle.path / "features.onnx").is_file():
        raise BundleError(
            f"model '{bundle.name}' has no features.onnx, so it cannot recognise "
            "images (re-export it with features)"
        )
    size, seq = bundle.manifest.image_size, bundle.manifest.seq_len
    out: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    done = 0

    def flush():
        nonlocal done
        tokens = bundle.encode(np.stack(batch)).reshape(len(batch), seq)  # (B, N)
        out.append(np.asarray(bundle.features(tokens), np.float32))  # (B, D)
        done += len(batch)
        batch.clear()
        if on_progress:
            on_progress(done)

    for item in images:
        rgb = item() if callable(item) else item
        batch.append(preprocess(rgb, size))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if not out:
        return np.zeros((0, bundle.manifest.features_dim or 0), np.float32)
    return np.concatenate(out)


def find_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files given directly, plus image files found recursively (sorted) in given folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif p.is_file():
            found.append(p)
        else:
            raise MageError(f"not found: {p}")
    return found


def labelled_folder(root: str | os.PathLike) -> tuple[list[str], list[list[Path]]]:
    """A folder whose sub-folders are classes -> (class names, image files per class)."""
    root = Path(root)
    if not root.is_dir():
        raise MageError(f"data folder not found: {root}")
    names, files = [], []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        images = find_images([sub])
        if images:
            names.append(sub.name)
            files.append(images)
    if len(names) < 2:
        raise MageError(
            f"{root} needs at least 2 sub-folders of images (one per class), found {len(names)}"
        )
    return names, files


# -- heads --------------------------------------------------------------------------------------


@dataclass
class Head:
    """A classifier on standardised features: logits = scale * f(z) @ weight.T + bias, where
    z = (features - mean) / std and f is L2 normalisation for centroid heads (cosine
    similarity), identity for linear ones."""

    kind: str  # "linear" | "centroid"
    class_names: list[str]
    weight: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    scale: float = 1.0  # 1 / temperature for centroid heads
    bundle_name: str = ""
    features_sha256: str = ""
    info: dict = field(default_factory=dict)  # how it was made: accuracies, K, epochs...

    @property
    def feature_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def normalize(self) -> bool:
        return self.kind == "centroid"

    def logits(self, features: np.ndarray) -> np.ndarray:
        f = np.atleast_2d(np.asarray(features, np.float32))
        if f.shape[1] != self.feature_dim:
            raise HeadError(f"head takes {self.feature_dim} features but got {f.shape[1]}")
        z = (f - self.mean) / self.std  # (B, D)
        if self.normalize:
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return self.scale * (z @ self.weight.T) + self.bias  # (B, C)

    @property
    def temperature(self) -> float:
        """Divides the logits before the softmax: fitted on held-out photos
        (`fit_temperature`, stored in info["temperature"]), 1.0 when never calibrated."""
        value = self.info.get("temperature", 1.0)
        return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0

    @property
    def not_sure_below(self) -> float:
        """A top probability under this is "not sure" (info["not_sure_below"], chosen with the
        temperature on held-out photos); NOT_SURE_BELOW when never calibrated."""
        value = self.info.get("not_sure_below", NOT_SURE_BELOW)
        return (
            float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else NOT_SURE_BELOW
        )

    @property
    def calibrated(self) -> bool:
        return "temperature" in self.info

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """float32 [B, D] -> probabilities [B, C] (with the calibrated temperature)."""
        return softmax(self.logits(features) / self.temperature)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.logits(features).argmax(axis=1)

    def check_bundle(self, bundle) -> list[str]:
        """Refuse a head made for another model; returns notices (e.g. model files changed)."""
        dim = bundle.manifest.features_dim
        if self.bundle_name and self.bundle_name != bundle.name:
            raise HeadError(
                f"this head was made for model '{self.bundle_name}' "
                f"({self.feature_dim} features), not '{bundle.name}'"
                f"{f' ({dim} features)' if dim else ''}: make a new one for this "
                "model"
            )
        if dim is not None and dim != self.feature_dim:
            raise HeadError(
                f"this head takes {self.feature_dim} features but model "
                f"'{bundle.name}' gives {dim}: make a new one for this model"
            )
        digest = bundle.manifest.files.get("features.onnx", "")
        if self.features_sha256 and digest and digest != self.features_sha256:
            return [f"model '{bundle.name}' changed since this head was made; results may be off"]
        return []

    def save(self, path: str | os.PathLike) -> None:
        """Write the head as .npz atomically (temp file + rename)."""
        path = Path(path)
        meta = {
            "format": HEAD_FORMAT,
            "format_version": HEAD_VERSION,
            "kind": self.kind,
            "scale": self.scale,
            "bundle_name": self.bundle_name,
            "feature_dim": self.feature_dim,
            "features_sha256": self.features_sha256,
            "info": self.info,
        }
        try:
            fd, tmp = temp_file_for(path)
        except OSError as e:
            raise MageError(f"cannot write {path}: {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb") as stream:
                np.savez(
                    stream,
                    weight=self.weight.astype(np.float32),
                    bias=self.bias.astype(np.float32),
                    mean=self.mean.astype(np.float32),
                    std=self.std.astype(np.float32),
                    class_names=np.array(self.class_names, dtype=str),
                    meta=np.array(json.dumps(meta)),
                )
            replace_file(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise MageError(f"cannot write {path}: {e.strerror or e}") from None
            raise


# Limits for head files: a head is untrusted input, and a small zip can claim gigabytes.
MAX_HEAD_BYTES = 256 << 20  # the file, and all its arrays once decompressed
MAX_HEAD_CLASSES = 100_000
MAX_HEAD_FEATURES = 1 << 16
HEAD_ARRAYS = {"weight": "f", "bias": "f", "mean": "f", "std": "f", "class_names": "U", "meta": "U"}


def _head_members(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of the head's arrays, read from the zip directory and the .npy
    headers without decompressing the data (refuses bombs, pickles and stray members)."""
    import zipfile

    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > 16:
                raise HeadError(f"{path} is not a classifier head (too many members)")
            total = 0
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else None
                if key not in HEAD_ARRAYS or key in found:
                    raise HeadError(
                        f"{path} is not a classifier head (unexpected member "
                        f"{info.filename[:60]!r})"
                    )
                total += info.file_size
                if total > MAX_HEAD_BYTES:
                    raise HeadError(
                        f"{path} is damaged: its arrays would take "
                        f"{total >> 20} MB or more (limit {MAX_HEAD_BYTES >> 20} MB)"
                    )
                with z.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(member, max_header_size=10000)
                if dtype.hasobject or dtype.kind != HEAD_ARRAYS[key]:
                    raise HeadError(f"{path} is damaged: '{key}' holds {dtype} data")
                if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > info.file_size:
                    raise HeadError(f"{path} is damaged: '{key}' is truncated")
                found[key] = (tuple(shape), dtype)
    except HeadError:
        raise
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        NotImplementedError,
        SyntaxError,
        TypeError,
        RuntimeError,
    ) as e:
        raise HeadError(f"{path} is not a classifier head ({type(e).__name__})") from None
    missing = sorted(set(HEAD_ARRAYS) - set(found))
    if missing:
        raise HeadError(f"{path} is not a classifier head (no {', '.join(missing)})")
    return found


def load_head(path: str | os.PathLike) -> Head:
    """Read a head written by `Head.save`; anything else is refused with a HeadError."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError:
        raise HeadError(f"head file not found: {path}") from None
    if not stat.S_ISREG(info.st_mode):
        raise HeadError(f"{path} is not a classifier head (not a regular file)")
    if info.st_size == 0:
        raise HeadError(f"{path} is not a classifier head (the file is empty)")
    if info.st_size > MAX_HEAD_BYTES:
        raise HeadError(f"{path} is too large for a classifier head")
    shapes = _head_members(path)
    c = shapes["class_names"][0]
    d = shapes["mean"][0]
    if (
        len(shapes["class_names"][0]) != 1
        or len(shapes["mean"][0]) != 1
        or shapes["meta"][0] != ()
        or shapes["weight"][0] != (c[0], d[0])
        or shapes["bias"][0] != c
        or shapes["std"][0] != d
        or not 2 <= c[0] <= MAX_HEAD_CLASSES
        or not 1 <= d[0] <= MAX_HEAD_FEATURES
    ):
        raise HeadError(f"{path} is damaged: its arrays do not fit together")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("weight", "bias", "mean", "std", "class_names")}
    except RecursionError:
        raise HeadError(f"{path} is damaged: its description is nested too deeply") from None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise HeadError(f"{path} is not a classifier head ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise HeadError(f"{path} is not a classifier head")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise HeadError(f"{path} is damaged: format_version is not a whole number")
    if version > HEAD_VERSION:
        raise HeadError(f"{path} is a newer head format than this app understands; update it")
    scale = meta.get("scale", 1.0)
    text_fields = [meta.get(k, "") for k in ("bundle_name", "features_sha256")]
    if (
        meta.get("kind") not in ("linear", "centroid")
        or not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not np.isfinite(scale)
        or not all(isinstance(t, str) for t in text_fields)
        or not isinstance(meta.get("info", {}), dict)
    ):
        raise HeadError(f"{path} is damaged: its description has fields of the wrong kind")
    names = [str(n) for n in arrays["class_names"]]
    numbers = [arrays[k] for k in ("weight", "bias", "mean", "std")]
    if not all(np.isfinite(a).all() for a in numbers) or not (arrays["std"] > 0).all():
        raise HeadError(f"{path} is damaged: it holds NaN, infinite or zero-spread values")
    return Head(
        kind=meta["kind"],
        class_names=names,
        weight=arrays["weight"],
        bias=arrays["bias"],
        mean=arrays["mean"],
        std=arrays["std"],
        scale=float(scale),
        bundle_name=text_fields[0],
        features_sha256=text_fields[1],
        info=meta.get("info", {}),
    )


def topk(head: Head, probs: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """Probabilities [B, C] -> per row the k best (class name, probability), best first."""
    probs = np.atleast_2d(probs)
    k = max(1, min(k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [(head.class_names[j], float(row[j])) for j in idx]
        for row, idx in zip(probs, order, strict=True)
    ]


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that makes softmax(logits / T) most likely on labelled held-out
    examples (temperature scaling, Guo et al. 2017): one number, so the ranking of classes and
    the accuracy never change, only how sure the probabilities say the head is."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise MageError("fit_temperature needs logits [N, C] and N labels")
    grid = np.geomspace(0.05, 50.0, 401)
    losses = [_nll(z / t, y) for t in grid]
    best = int(np.argmin(losses))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    for _ in range(40):  # golden-section refinement between the grid neighbours
        a, b = high - (high - low) / 1.618, low + (high - low) / 1.618
        if _nll(z / a, y) < _nll(z / b, y):
            high = b
        else:
            low = a
    return float((low + high) / 2)


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """How far a head's top probability can be trusted on labelled examples: accuracy, mean
    top probability, expected calibration error (ECE: the gap between the two, averaged over
    `bins` confidence bins) and the negative log-likelihood of the true class."""
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, np.int64)
    top, guess = p.max(axis=1), p.argmax(axis=1)
    right = guess == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (top > lo) & (top <= hi)
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - top[inside].mean())
    nll = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))
    return {
        "n": len(y),
        "accuracy": float(right.mean()),
        "mean_confidence": float(top.mean()),
        "ece": float(ece),
        "nll": nll,
    }


def _nll(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def bundle_identity(bundle) -> dict:
    """The keyword arguments that tie a head to `bundle`."""
    if bundle is None:
        return {}
    return {
        "bundle_name": bundle.name,
        "features_sha256": bundle.manifest.files.get("features.onnx", ""),
    }


# -- fitting ------------------------------------------------------------------------------------


def standardiser(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature (BatchNorm without affine); std floored so constant features do
    not blow up."""
    mean = features.mean(axis=0)
    var = features.var(axis=0)
    std = np.sqrt(var + 1e-6 * (float(var.mean()) + 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


def split_indices(
    labels: np.ndarray, val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split -> (train, held-out) indices; every class keeps at least
    one training example and, when it has 2 or more and val_fraction > 0, one held out."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = round(len(idx) * val_fraction) if val_fraction > 0 else 0
        n_val = min(max(n_val, 1 if val_fraction > 0 else 0), len(idx) - 1)
        val += list(idx[:n_val])
        train += list(idx[n_val:])
    return np.sort(np.array(train, int)), np.sort(np.array(val, int))


def _check_xy(features, labels, class_names) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, np.float32)
    y = np.asarray(labels, int)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise MageError("features must be [N, D] with one label per row")
    if len(class_names) < 2:
        raise MageError("a classifier needs at least 2 classes")
    if y.min() < 0 or y.max() >= len(class_names):
        raise MageError("labels must index class_names")
    return x, y


def _adam_softmax(
    z: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int | None,
    seed: int,
    on_epoch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression by Adam (decoupled weight decay, cosine lr) on standardised z."""
    rng = np.random.default_rng(seed)
    n, d = z.shape
    w = np.zeros((n_classes, d), np.float32)
    b = np.zeros(n_classes, np.float32)
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    bs = n if not batch_size or batch_size >= n else batch_size
    steps_per_epoch = -(-n // bs)
    total, t = epochs * steps_per_epoch, 0
    for epoch in range(epochs):
        order = rng.permutation(n) if bs < n else np.arange(n)
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            p = softmax(z[idx] @ w.T + b)  # (B, C)
            g = (p - onehot[idx]) / len(idx)
            grads = [g.T @ z[idx], g.sum(axis=0)]
            t += 1
            step_lr = lr * 0.5 * (1 + np.cos(np.pi * (t - 1) / max(total, 1)))
            for i, (param, grad) in enumerate(zip((w, b), grads, strict=True)):
                m[i] = 0.9 * m[i] + 0.1 * grad
                v[i] = 0.999 * v[i] + 0.001 * grad * grad
                mhat, vhat = m[i] / (1 - 0.9**t), v[i] / (1 - 0.999**t)
                param -= step_lr * mhat / (np.sqrt(vhat) + 1e-8)
            w -= step_lr * weight_decay * w  # decoupled decay, weights only
        if on_epoch:
            on_epoch(epoch + 1)
    return w, b


def accuracy(head: Head, features: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((head.predict(features) == np.asarray(labels)).mean())


def fit_linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    epochs: int = 100,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    batch_size: int | None = 256,
    seed: int = 0,
    bundle=None,
    on_epoch: Callable[[int], None] | None = None,
) -> Head:
    """Linear probe: standardise (train mean/std), softmax classifier by Adam + weight decay.

    Args:
        features: float32 [N, D] frozen features.
        labels: int [N] indices into class_names.
        class_names: C names.
        epochs: passes over the data.
        lr: peak Adam learning rate (cosine decay to 0).
        weight_decay: decoupled weight decay per step (times lr).
        batch_size: mini-batch size; None = full batch.
        seed: shuffling seed.
        bundle: the model the features came from (stored in the head).
        on_epoch: called with the epoch number after each epoch.
    """
    x, y = _check_xy(features, labels, class_names)
    if epochs < 1:
        raise MageError("--epochs must be at least 1")
    mean, std = standardiser(x)
    w, b = _adam_softmax(
        (x - mean) / std, y, len(class_names), epochs, lr, weight_decay, batch_size, seed, on_epoch
    )
    head = Head(
        "linear",
        list(class_names),
        w,
        b,
        mean,
        std,
        **bundle_identity(bundle),
        info={
            "method": "linear probe",
            "epochs": epochs,
            "lr": lr,
            "weight_decay": weight_decay,
            "train_size": len(y),
        },
    )
    head.info["train_accuracy"] = accuracy(head, x, y)
    return head


def fit_centroid(features, labels, class_names, temperature: float = 0.1, bundle=None) -> Head:
    """Nearest centroid with cosine similarity on standardised, L2-normalised features."""
    x, y = _check_xy(features, labels, class_names)
    mean, std = standardiser(x)
    z = (x - mean) / std
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    cent = np.zeros((len(class_names), x.shape[1]), np.float32)
    for c in range(len(class_names)):
        if (y == c).any():
            mu = z[y == c].mean(axis=0)
            cent[c] = mu / max(float(np.linalg.norm(mu)), 1e-12)
    # A class with no example gets a zero centroid (similarity 0) and a large negative bias.
    bias = np.where(np.bincount(y, minlength=len(class_names)) > 0, 0.0, -1e4).astype(np.float32)
    return Head(
        "centroid",
        list(class_names),
        cent,
        bias,
        mean,
        std,
        scale=1.0 / temperature,
        **bundle_identity(bundle),
        info={"method": "few-shot centroid", "temperature": temperature},
    )


def fit_logistic(features, labels, class_names, bundle=None, seed: int = 0) -> Head:
    """Few-shot logistic regression: full batch, strong weight decay (few examples)."""
    head = fit_linear_probe(
        features,
        labels,
        class_names,
        epochs=200,
        lr=0.01,
        weight_decay=0.05,
        batch_size=None,
        seed=seed,
        bundle=bundle,
    )
    head.info["method"] = "few-shot logistic regression"
    return head


def leave_one_out_accuracy(
    features,
    labels,
    class_names,
    kind: str = "centroid",
    temperature: float = 0.1,
    folds: int | None = None,
    seed: int = 0,
) -> float:
    """Held-out accuracy of refitting without each example (or each of `folds` stratified folds);
    standardisation is refitted too, so nothing about the held-out example leaks."""
    x, y = _check_xy(features, labels, class_names)
    n = len(y)
    if folds is None or folds >= n:
        groups = np.arange(n)
    else:
        groups = np.empty(n, int)
        rng = np.random.default_rng(seed)
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            groups[idx] = np.arange(len(idx)) % folds
    correct = 0
    for g in np.unique(groups):
        test = groups == g
        if test.all():
            continue
        if kind == "centroid":
            head = fit_centroid(x[~test], y[~test], class_names, temperature)
        else:
            head = fit_logistic(x[~test], y[~test], class_names, seed=seed)
        correct += int((head.predict(x[test]) == y[test]).sum())
    return correct / n


def fit_fewshot(
    features,
    labels,
    class_names,
    *,
    kind: str = "auto",
    temperature: float = 0.1,
    seed: int = 0,
    bundle=None,
) -> Head:
    """Few-shot classifier from K examples per class.

    kind "centroid" | "logistic" | "auto": auto uses the centroid head, and with at least 5
    examples in every class compares it with logistic regression by 5-fold cross-validation and
    keeps the better (the centroid on ties). The head's info holds the estimates.
    """
    x, y = _check_xy(features, labels, class_names)
    counts = np.bincount(y, minlength=len(class_names))
    if (counts == 0).any():
        empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
        raise MageError(f"no examples for class(es): {', '.join(empty)}")
    if kind not in ("auto", "centroid", "logistic"):
        raise MageError(f"unknown few-shot kind '{kind}' (auto, centroid, logistic)")
    k_min = int(counts.min())
    scores = {}
    if kind == "auto" and k_min >= 5:
        for option in ("centroid", "logistic"):
            scores[option] = leave_one_out_accuracy(
                x, y, class_names, option, temperature, folds=5, seed=seed
            )
        kind = "logistic" if scores["logistic"] > scores["centroid"] else "centroid"
    elif kind == "auto":
        kind = "centroid"
    if kind == "centroid":
        head = fit_centroid(x, y, class_names, temperature, bundle)
    else:
        head = fit_logistic(x, y, class_names, bundle, seed)
    head.info.update({"shots": k_min, "train_size": len(y), "train_accuracy": accuracy(head, x, y)})
    if scores:
        head.info["cv_accuracy"] = scores
    return head


# -- heads stored in a bundle ------------------------------------------------------------------


def store_in_bundle(bundle, head, name: str) -> Path:
    """Write `head` as heads/NAME.npz in the bundle folder and list it in the manifest (first
    head = the default of `classify`); the manifest is re-hashed. Returns the file written."""
    from engine.runtime.manifest import read_manifest, write_manifest

    check_head_name(name)
    manifest = read_manifest(bundle.path, verify_hashes=True)  # never bless a damaged file
    rel = f"heads/{name}.npz"
    if (bundle.path / "heads").is_symlink():
        raise OutputError(
            f"{bundle.path / 'heads'} is a symbolic link: refusing to write through it"
        )
    try:
        (bundle.path / "heads").mkdir(exist_ok=True)
        head.save(bundle.path / rel)
        manifest.heads[name] = rel
        manifest.files[rel] = ""
        write_manifest(bundle.path, manifest)
    except OSError as e:
        raise OutputError(
            f"cannot write into model folder {bundle.path}: {e.strerror or e}"
        ) from None
    bundle.manifest.heads = manifest.heads
    bundle.manifest.files = manifest.files
    return bundle.path / rel


def check_head_name(name: str) -> None:
    """Raises MageError for a head name that is not a plain file-name stem."""
    if not HEAD_NAME.match(name):
        raise MageError(f"head name '{name}' may use only letters, digits, '.', '_' and '-'")


def bundle_head(bundle, name: str | None = None):
    """The bundle's head `name` (default: the first one listed in the manifest)."""
    heads = bundle.manifest.heads
    if not heads:
        raise HeadError(
            f"model '{bundle.name}' has no classifier: make one with `python main.py probe "
            "--data DIR --into-bundle` (a folder with one sub-folder per class), or `python "
            "main.py fewshot --data DIR -o HEAD.npz` and pass --head HEAD.npz"
        )
    name = name or next(iter(heads))
    if name not in heads:
        raise HeadError(f"model '{bundle.name}' has no head '{name}' (heads: {', '.join(heads)})")
    return load_head(bundle.path / heads[name])
