"""`EditOptions`: the run panel's choices (mode, seeds, candidates, class, extend side...), kept
with the document and in the preferences.

Three names, three things: `EditOptions` is what the panel shows (with the app's own
conventions: 0 steps or a negative temperature mean the model's default); the engine's
`Settings` (engine.runtime.settings) is what one run decodes with, made by
`EditOptions.settings(seeds)`; `Preferences` (app.preferences) is the app's state between
sessions (window, folders, recent files, theme, and the last EditOptions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from engine.runtime.runs import SIDES
from engine.runtime.settings import TEXTURES, Settings, seeds_from

MODES = ("remove", "class", "generate", "extend")
TEXTURE_TITLES = {
    "photo": "From the photo",
    "model": "Model only",
    "classic": "Classic (no model)",
}
MODE_TITLES = {
    "remove": "Remove / fill",
    "class": "Fill as class",
    "generate": "Generate new image",
    "extend": "Extend canvas",
}


@dataclass(frozen=True)
class EditOptions:
    """The run panel's choices; `settings(seeds)` turns them into one run's engine Settings."""

    mode: str = "remove"
    steps: int = 0  # 0: the model's default
    temperature: float = -1.0  # < 0: the model's default
    seed: int = 0
    fixed_seed: bool = False  # False: new random seeds on every run
    candidates: int = 1
    ring: int = 1  # extra token ring around the painted tokens
    coverage: float = 0.0
    feather: float = -1.0  # px at image scale; < 0: the engine's default (1 px)
    seamless: bool = True  # gradient-domain blend of the fill into the photo
    texture: str = "photo"  # "photo" | "model" | "classic" (engine.runtime.settings.TEXTURES)
    class_name: str = ""
    generate_class: bool = False  # Generate mode: of the chosen class instead of any image
    extend_side: str = "right"
    extend_cells: int = 4
    reroll_count: int = 8

    def uses_class(self) -> bool:
        return self.mode == "class" or (self.mode == "generate" and self.generate_class)

    def class_missing(self, manifest) -> str:
        """Why these options cannot run on a model with `manifest` for want of a class ("" when
        they can): a class-only model (such as an imported MaskGIT one, which has no "any
        class") runs only Fill as class and Generate of a class; a class to use must be picked."""
        needs = bool(getattr(manifest, "needs_class", False))
        if needs and not self.uses_class():
            if self.mode == "generate":
                return "This model generates only a class: tick 'Of the chosen class' and pick one"
            what = "remove or fill from the surroundings" if self.mode == "remove" else "extend"
            return (
                f"This model cannot {what}: it always draws a class. "
                "Use Fill as class and pick what should appear"
            )
        conditional = bool(getattr(manifest, "class_conditional", False))
        if conditional and self.uses_class() and not self.class_name:
            return "Pick a class first: type a name, a synonym or a class number"
        return ""

    def settings(self, seeds: tuple[int, ...]) -> Settings:
        """The engine's Settings for one run with the given seeds."""
        return Settings(
            steps=self.steps or None,
            temperature=self.temperature if self.temperature >= 0 else None,
            seeds=seeds,
            ring=self.ring,
            coverage=self.coverage,
            feather=self.feather if self.feather >= 0 else None,
            seamless=self.seamless,
            class_name=(self.class_name or None) if self.uses_class() else None,
            # classic texture needs a painted area to complete; extend always uses the model
            texture="photo"
            if self.mode == "extend" and self.texture == "classic"
            else self.texture,
        )

    def pick_seeds(self) -> tuple[int, ...]:
        return seeds_from(self.seed if self.fixed_seed else None, max(1, self.candidates))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EditOptions:
        """Tolerates missing and unknown keys, so options saved by another version still load."""
        known = {f.name: f.type for f in fields(cls)}
        base = cls()
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in known:
                default = getattr(base, key)
                try:
                    values[key] = (
                        type(default)(value)
                        if not isinstance(default, bool)
                        else (value in (True, 1, "true", "1", "True"))
                    )
                except (TypeError, ValueError):
                    continue
        options = replace(base, **values)
        if options.mode not in MODES:
            options = replace(options, mode="remove")
        if options.extend_side not in SIDES:
            options = replace(options, extend_side="right")
        if options.texture not in TEXTURES:
            options = replace(options, texture="photo")
        return options
