"""A class fill keeps the sample that shows its class best, as the model itself reads it.

One model both generates and recognises images. A "fill as class" decodes a few samples of the
hole per candidate (each from its own seed, derived from the candidate's) and finishes each
like a candidate (colour match, texture stage). The bundle's recognition head (the one
`main.py classify` uses) then reads every finished fill of the context square, the way it reads
a photo, and the candidate is the sample it finds most like the class. Without a head, without
features.onnx, or for a class the head does not know, every candidate is its first sample, as
in a plain run. The pick is a function of the candidate's seed, so the same seed gives the
same fill. The price is time: every sample is decoded and finished.

Measured with bench/class_fill.py (docs/model-quality.md, "Fill as class"): the head finds the
class more probable on the filled square than on a plain removal's in 79% of the held-out
pairs with the pick, 60% with one sample; a person judging blind sees the class far less often
(the head that picks is the head that measures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.runtime.errors import MageError
from engine.runtime.model import Model
from engine.runtime.recognition import bundle_head, image_features

log = logging.getLogger(__name__)

# samples a class fill draws per candidate unless the settings say otherwise
DEFAULT_SAMPLES = 4
MAX_SAMPLES = 16


def sample_seeds(seeds: Sequence[int], samples: int) -> tuple[int, ...]:
    """`samples` seeds per candidate seed, candidate by candidate: the seed itself first (so
    one sample is the plain run), then seeds derived from it alone."""
    out: list[int] = []
    for seed in seeds:
        out.append(int(seed))
        for k in range(1, samples):
            state = np.random.SeedSequence([int(seed), k]).generate_state(1, np.uint32)
            out.append(int(state[0] & 0x7FFFFFFF))
    return tuple(out)


@dataclass(frozen=True)
class ClassPick:
    """How many samples a candidate draws, and the head's score of a sample's pixels."""

    samples: int
    score: Callable[[list[np.ndarray]], np.ndarray]  # uint8 [H,W,3] fills -> float [B]

    def best_rows(self, images: list[np.ndarray], candidates: int) -> np.ndarray:
        """Indices into `images` (candidates * samples fills of the context square, ordered
        as `sample_seeds`): each candidate's best-scoring sample (the first on a tie)."""
        scores = np.asarray(self.score(images), np.float64).reshape(candidates, self.samples)
        return np.arange(candidates) * self.samples + np.argmax(scores, axis=1)


def class_pick(bundle: Model, class_name: str | None, samples: int) -> ClassPick | None:
    """The pick for a class run, or None when there is nothing to pick with: no class, one
    sample, or no recognition head that knows the class (a plain run then)."""
    if not class_name or samples <= 1:
        return None
    try:
        head = bundle_head(bundle)
        head.check_bundle(bundle)  # refuses a head made for another model
    except (MageError, OSError) as exc:  # no head, or one that cannot be read or used
        log.info("fill as class without a pick: %s", exc)
        return None
    names = list(head.class_names)
    if class_name not in names or not (bundle.path / "features.onnx").is_file():
        return None
    column = names.index(class_name)

    def score(images: list[np.ndarray]) -> np.ndarray:
        return head.predict_proba(image_features(bundle, images))[:, column]

    return ClassPick(samples, score)
