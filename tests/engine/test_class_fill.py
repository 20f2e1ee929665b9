"""Fill as class: the class-run defaults (guidance, the texture stage's weight) make the fill
differ visibly from a plain removal, and the GUI and the CLI run with the same defaults."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from app.core.options import EditOptions
from engine.cli import build_parser
from engine.cli.images import _settings
from engine.runtime.runs import edit_image
from engine.runtime.settings import CLASS_GUIDANCE, CLASS_TEXTURE, Settings
from engine.runtime.texture import DEFAULT_OPTIONS


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic photo with a disc and a little grain."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    img = np.stack([x * 200 + 30, y * 180 + 40, (x + y) * 90 + 20], -1)
    img[(x - 0.5) ** 2 + (y - 0.45) ** 2 < 0.02] = [220, 40, 40]
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def _square_mask() -> np.ndarray:
    mask = np.zeros((64, 64), bool)
    mask[20:44, 18:42] = True
    return mask


def _in_mask_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(-1)[mask].mean())


def test_class_defaults_resolve_on_a_model_with_a_null_class(tiny_bundle):
    manifest = tiny_bundle.manifest
    assert manifest.null_class_id is not None
    plain = Settings().resolved(manifest)
    as_class = Settings(class_name="dog").resolved(manifest)
    assert plain.guidance == 0.0
    assert Settings().texture_options == DEFAULT_OPTIONS
    assert as_class.guidance == CLASS_GUIDANCE > 0
    assert Settings(class_name="dog").texture_options == CLASS_TEXTURE
    assert CLASS_TEXTURE.guide_weight > DEFAULT_OPTIONS.guide_weight
    # a guidance the user set wins, 0 included
    assert Settings(class_name="dog", guidance=0.0).resolved(manifest).guidance == 0.0
    assert Settings(class_name="dog", guidance=2.5).resolved(manifest).guidance == 2.5
    assert as_class.describe(manifest)["mage:guidance"] == f"{CLASS_GUIDANCE:g}"


def test_a_class_only_model_gets_no_default_guidance(tiny_bundle):
    manifest = replace(tiny_bundle.manifest, null_class_id=None)
    assert manifest.needs_class
    assert Settings(class_name="dog").resolved(manifest).guidance == 0.0


def test_gui_and_cli_fill_as_class_use_the_class_defaults(tiny_bundle):
    manifest = tiny_bundle.manifest
    gui = EditOptions(mode="class", class_name="dog").settings((0,))
    args = build_parser().parse_args(
        ["edit", "in.png", "--mask", "m.png", "-o", "o.png", "--class", "dog"]
    )
    cli = _settings(args)
    for s in (gui, cli):
        assert s.resolved(manifest).guidance == CLASS_GUIDANCE
        assert s.texture_options == CLASS_TEXTURE
    # a plain removal keeps its settings: no guidance, the default texture weight
    gui_plain = EditOptions(mode="remove", class_name="dog").settings((0,))
    cli_plain = _settings(
        build_parser().parse_args(["edit", "in.png", "--mask", "m.png", "-o", "o.png"])
    )
    for s in (gui_plain, cli_plain):
        assert s.class_name is None
        assert s.resolved(manifest).guidance == 0.0
        assert s.texture_options == DEFAULT_OPTIONS
    explicit = build_parser().parse_args(
        ["edit", "in.png", "--mask", "m.png", "-o", "o.png", "--class", "dog", "--guidance", "0"]
    )
    assert _settings(explicit).resolved(manifest).guidance == 0.0


def test_a_class_fill_differs_from_a_plain_removal(tiny_bundle, monkeypatch):
    """With the class defaults the fill moves well past the few grey levels by which a class
    fill without guidance and with the removal's texture weight differed."""
    rgb, mask = photo(64, 64), _square_mask()
    plain = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(3,))).images[0]
    as_class = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(3,), class_name="dog"))
    assert as_class.settings.class_name == "dog"
    assert np.array_equal(as_class.images[0][~mask], plain[~mask])  # outside: untouched
    assert _in_mask_diff(as_class.images[0], plain, mask) > 4.0
    # the same seed gives the same pixels
    again = edit_image(tiny_bundle, rgb, mask, Settings(seeds=(3,), class_name="dog"))
    assert np.array_equal(again.images[0], as_class.images[0])


def test_a_class_fill_runs_with_the_class_guidance_and_texture_weight(tiny_bundle, monkeypatch):
    """What reaches the model and the texture stage: the class-run defaults for a class fill,
    the removal's own settings for a plain removal."""
    import engine.runtime.compose as compose

    guidance: list[float] = []
    options: list = []
    to_logits, synthesis = tiny_bundle.tokens_to_logits, compose.synthesis

    def spy_logits(class_id=None, g=0.0, model="transformer"):
        guidance.append(g)
        return to_logits(class_id, g, model=model)

    def spy_synthesis(*args, **kwargs):
        options.append(kwargs["options"])
        return (yield from synthesis(*args, **kwargs))

    monkeypatch.setattr(tiny_bundle, "tokens_to_logits", spy_logits)
    monkeypatch.setattr(compose, "synthesis", spy_synthesis)
    rgb, mask = photo(64, 64), _square_mask()
    edit_image(tiny_bundle, rgb, mask, Settings(seeds=(1,), steps=2))
    edit_image(tiny_bundle, rgb, mask, Settings(seeds=(1,), steps=2, class_name="dog"))
    assert guidance == [0.0, CLASS_GUIDANCE]
    assert [o.guide_weight for o in options] == [
        DEFAULT_OPTIONS.guide_weight,
        CLASS_TEXTURE.guide_weight,
    ]
