"""What the user chose for a run (`Settings`) and how seeds are picked."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.runtime.class_pick import DEFAULT_SAMPLES, MAX_SAMPLES
from engine.runtime.manifest import Manifest
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS
from engine.runtime.speed import EXACT, Speed, scaled_steps
from engine.runtime.texture import DEFAULT_OPTIONS, TextureOptions

TEXTURES = ("photo", "model", "classic")
# "fill as class": the class the model drew must show through, and the library's guide term
# is too weak to carry it, so the library's fill gives only its fine detail (finer than a
# 6 px box) over the model's colours and shapes; where the library does not load, the
# built-in synthesis with a heavy guide term (bench/class_fill.py, docs/model-quality.md)
CLASS_TEXTURE = replace(DEFAULT_OPTIONS, guide_weight=16.0, guide_layout=6)
# classifier-free guidance of a class run (fill as class, generate a class) unless the user
# sets one; a model without an unconditional class has no guidance (bench/class_fill.py)
CLASS_GUIDANCE = 3.0


@dataclass(frozen=True)
class Settings:
    """What the user chose; None means the bundle's default."""

    steps: int | None = None
    temperature: float | None = None
    seeds: tuple[int, ...] = (0,)  # one candidate per seed
    ring: int = 1  # extra token ring around the touched tokens
    coverage: float = 0.0  # fraction of a token's pixels needed to mask it
    feather: float | None = None  # px at image scale; None = 3/4 of a token
    start_step: int = 0
    class_name: str | None = None  # "fill as class X" / class-conditional generation
    # classifier-free guidance strength (class models); None: CLASS_GUIDANCE for a class run
    # on a model with an unconditional class, else 0
    guidance: float | None = None
    context: float = 2.0  # context square side / mask bounding-box side
    speed: Speed = EXACT  # speed options (runtime/speed.py); default exact
    sample_temperature: float | None = None  # softmax temperature of the token sampling
    colour_match: bool = True  # fit the fill's colours to the known surroundings
    seamless: bool = True  # gradient-domain blend: the fill meets the photo
    # where a fill's pixels come from: "photo" (the photo's own texture, placed where the
    # model's fill says), "model" (the model's decode) or "classic" (texture, no model)
    texture: str = "photo"
    # a class fill draws this many samples per candidate and keeps the one the model's own
    # recognition head reads most as the class (runtime/class_pick.py); 1: no pick
    class_samples: int = DEFAULT_SAMPLES

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES:
            raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, not {self.texture!r}")
        if not 1 <= self.class_samples <= MAX_SAMPLES:
            raise ValueError(f"class samples must be 1 to {MAX_SAMPLES}, not {self.class_samples}")

    @property
    def texture_options(self) -> TextureOptions:
        """A class fill leans on the model's fill so that the class shows; `seamless` decides
        whether the synthesis gets its smooth seam correction."""
        options = CLASS_TEXTURE if self.class_name else DEFAULT_OPTIONS
        return options if options.blend == self.seamless else replace(options, blend=self.seamless)

    def for_masked(self, manifest: Manifest, masked: int) -> Settings:
        """Resolved settings with the speed options' step scaling applied for `masked` unknown
        tokens (unchanged unless speed.scale_steps; never with a start_step)."""
        return self.resolved(manifest).scaled_for(manifest, masked)

    def scaled_for(self, manifest: Manifest, masked: int) -> Settings:
        """These settings (their steps resolved) with the speed options' step scaling applied
        for `masked` unknown tokens."""
        if not self.speed.scale_steps or self.start_step or self.steps is None:
            return self
        steps = scaled_steps(self.steps, masked, manifest.seq_len, self.speed.min_steps)
        return replace(self, steps=steps)

    @property
    def is_resolved(self) -> bool:
        """Nothing left for the bundle's defaults (what `resolved` returns)."""
        return None not in (self.steps, self.temperature, self.sample_temperature, self.guidance)

    def resolved(self, manifest: Manifest) -> Settings:
        d = manifest.decoding
        return replace(
            self,
            guidance=self.guidance
            if self.guidance is not None
            else default_guidance(self, manifest),
            steps=self.steps or int(d.get("steps", DEFAULT_STEPS)),
            temperature=(
                self.temperature
                if self.temperature is not None
                else float(d.get("choice_temperature", DEFAULT_CHOICE_TEMPERATURE))
            ),
            sample_temperature=(
                self.sample_temperature
                if self.sample_temperature is not None
                else float(d.get("sample_temperature", 1.0))
            ),
        )

    def describe(self, manifest: Manifest) -> dict[str, str]:
        """The settings as PNG text-chunk entries (resolved here unless they are already)."""
        s = self if self.is_resolved else self.resolved(manifest)
        return {
            "mage:model": manifest.name,
            "mage:seeds": ",".join(map(str, s.seeds)),
            "mage:steps": str(s.steps),
            "mage:temperature": f"{s.temperature:g}",
            "mage:class": s.class_name or "",
            "mage:ring": str(s.ring),
            "mage:guidance": f"{s.guidance:g}",
            "mage:sample_temperature": f"{s.sample_temperature:g}",
            "mage:seamless": "yes" if s.seamless else "no",
            "mage:texture": s.texture,
            **({"mage:class_samples": str(s.class_samples)} if s.class_name else {}),
            **({} if s.speed.exact else {"mage:speed": s.speed.name}),
        }


def default_guidance(settings: Settings, manifest: Manifest) -> float:
    """The guidance a run gets when the user set none: CLASS_GUIDANCE with a class on a model
    that has an unconditional class (guidance mixes in its logits), else 0."""
    if settings.class_name and manifest.class_conditional and not manifest.needs_class:
        return CLASS_GUIDANCE
    return 0.0


def seeds_from(
    seed: int | None, count: int, rng: np.random.Generator | None = None
) -> tuple[int, ...]:
    """`count` seeds: seed, seed+1, ... or random ones when seed is None."""
    if seed is None:
        rng = rng or np.random.default_rng()
        return tuple(int(s) for s in rng.integers(0, 2**31 - 1, size=count))
    return tuple(seed + i for i in range(count))
