"""Checkpoint files of a training run, and the models built from them.

A checkpoint is a plain dict saved with `torch.save`: "kind" ("tokenizer" or "mage"), "config"
(the model's sizes), "model" (fp32 weights), the step, held-out metrics, the flags and data it
was trained with; a run's own KIND.pt adds the optimiser, schedule and RNG state for --resume.
Reads go through `torch.load(weights_only=True)`, so a checkpoint never runs code.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from engine.modeling.config import MageConfig, VqganConfig
from engine.modeling.mage import MAGE
from engine.modeling.vqgan import VQGAN


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write beside the target and rename, so a crash never leaves half a checkpoint."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            torch.save(obj, stream)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """A checkpoint file, or for kind "tokenizer" also a bundle folder (its tokenizer is read
    back from the ONNX files and verified: engine/modeling/from_bundle.py)."""
    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file() and kind == "tokenizer":
        from engine.modeling.from_bundle import tokenizer_checkpoint

        return tokenizer_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # the refusal below says it in one line
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles refused by weights_only, truncated or non-zip files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(f"{path} is not a readable checkpoint: {first}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(
            f"{path} is not a checkpoint of this app (it holds a {type(ckpt).__name__}, not a dict)"
        )
    if kind is not None and ckpt.get("kind") != kind:
        raise ValueError(f"{path} is a '{ckpt.get('kind')}' checkpoint, expected '{kind}'")
    return ckpt


def load_same_model(path: str | Path, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint whose model has exactly these sizes (to resume or to start from)."""
    ckpt = load_checkpoint(path, kind)
    if ckpt["config"] != config:
        raise ValueError(f"{path}: its model sizes differ from the flags given")
    return ckpt


def build_vqgan(ckpt: dict[str, Any]) -> VQGAN:
    cfg = dict(ckpt["config"])
    cfg["ch_mult"] = tuple(cfg["ch_mult"])
    model = VQGAN(VqganConfig(**cfg))
    model.load_state_dict(ckpt["model"])
    return model


def build_mage(ckpt: dict[str, Any]) -> MAGE:
    model = MAGE(MageConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model


def plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as plain values (paths as text), as a checkpoint records them."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if isinstance(v, (int, float, str, bool, list, tuple, Path, type(None)))
    }
