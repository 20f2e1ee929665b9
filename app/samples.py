"""The sample photos that ship in `assets/`, each with a ready mask (welcome screen, demo mode).

`assets/samples.json` lists them: either a list or {"samples": [...]} of objects with
`file` and `mask` (paths relative to the JSON file), `title` ("Try: remove the ..."),
`source` and `licence`. The assets folder is found as the shipped models are
(engine.runtime.locations): the checkout's top-level `assets/`, or the copy an installed wheel
carries; $MAGE_STUDIO_ASSETS names another folder. A sample whose files are missing, or a list
that cannot be read, is left out with a one-line warning in the log: the window never fails.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.runtime.imageio import load_image, load_mask
from engine.runtime.locations import shipped_dir

log = logging.getLogger(__name__)
ENV_ASSETS = "MAGE_STUDIO_ASSETS"
SAMPLES_FILE = "samples.json"


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path
    title: str  # "Try: remove the ..."
    source: str = ""
    licence: str = ""

    @property
    def name(self) -> str:
        return self.image.stem


def read_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """The sample's photo (uint8 RGB) and its mask (bool, scaled to the photo); MageError
    when either cannot be read."""
    rgb = load_image(sample.image).rgb
    return rgb, load_mask(sample.mask, (rgb.shape[1], rgb.shape[0]), scale=True)


def assets_dir() -> Path:
    """$MAGE_STUDIO_ASSETS, else the shipped `assets` folder."""
    override = os.environ.get(ENV_ASSETS, "").strip()
    if override:
        return Path(override).expanduser()
    return shipped_dir("assets")


def load_samples(folder: Path | str | None = None) -> list[Sample]:
    """The usable samples listed in `folder`/samples.json (the assets folder by default)."""
    folder = Path(folder) if folder is not None else assets_dir()
    path = folder / SAMPLES_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("cannot read the sample list %s: %s", path, _one_line(error))
        return []
    entries = data.get("samples") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        log.warning("cannot read the sample list %s: expected a list of samples", path)
        return []
    samples = []
    for n, entry in enumerate(entries):
        sample, problem = _sample(folder, entry)
        if sample is None:
            log.warning("sample %d in %s left out: %s", n + 1, path, problem)
        else:
            samples.append(sample)
    return samples


def _sample(folder: Path, entry) -> tuple[Sample | None, str]:
    if not isinstance(entry, dict):
        return None, "not an object"
    file, mask = entry.get("file"), entry.get("mask")
    if not isinstance(file, str) or not file or not isinstance(mask, str) or not mask:
        return None, "it needs 'file' and 'mask'"
    image_path, mask_path = folder / file, folder / mask
    for p in (image_path, mask_path):
        if not p.is_file():
            return None, f"{p.name} is missing"
    title = str(entry.get("title") or f"Try: {Path(file).stem.replace('-', ' ')}")
    return Sample(
        image_path,
        mask_path,
        title,
        str(entry.get("source") or ""),
        str(entry.get("licence") or entry.get("license") or ""),
    ), ""


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
