"""Class-only models (class names, no null class, as an imported MaskGIT bundle): valid
manifests, a clear one-line refusal of a run without a class or with guidance, and the optional
`class_synonyms` field checked like every other field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.runtime.bundle import Bundle
from engine.runtime.errors import BundleError
from engine.runtime.manifest import MAX_SYNONYMS, read_manifest
from engine.runtime.runs import Generate, run, run_to_end
from engine.runtime.settings import Settings

SYNONYMS = [["kitty", "house cat"], ["hound"], []]


def _edited(src: Path, folder: Path, **changes) -> Path:
    out = Path(shutil.copytree(src, folder / "b"))
    data = json.loads((out / "manifest.json").read_text())
    data.update(changes)
    (out / "manifest.json").write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def class_only(tiny_bundle_path, tmp_path_factory) -> Bundle:
    folder = tmp_path_factory.mktemp("class-only")
    path = _edited(tiny_bundle_path, folder, null_class_id=None, class_synonyms=SYNONYMS)
    return Bundle(path, device="cpu")


def test_class_names_without_null_class_are_valid(class_only):
    m = class_only.manifest
    assert m.class_conditional
    assert m.needs_class
    assert m.null_class_id is None
    assert m.class_synonyms == SYNONYMS
    assert m.class_id("dog") == 1


def test_no_class_on_a_class_only_model_is_one_line(class_only):
    with pytest.raises(BundleError, match=r"^model 'tiny' needs a class: choose one") as e:
        class_only.manifest.class_id(None)
    assert "\n" not in str(e.value)
    seq = np.full((1, class_only.manifest.seq_len), class_only.manifest.mask_token_id)
    with pytest.raises(BundleError, match="needs a class"):
        class_only.logits(seq)
    with pytest.raises(BundleError, match="needs a class"):
        class_only.tokens_to_logits(None)


def test_a_run_without_a_class_is_refused_and_with_one_runs(class_only):
    with pytest.raises(BundleError, match="needs a class"):
        run_to_end(run(class_only, Generate(), Settings(seeds=(1,), steps=2)))
    result = run_to_end(
        run(class_only, Generate(), Settings(seeds=(1,), steps=2, class_name="dog"))
    )
    assert result.tokens.shape == (1, class_only.manifest.seq_len)
    assert (result.tokens < class_only.manifest.codebook_size).all()


def test_guidance_needs_a_null_class(class_only, tiny_bundle):
    with pytest.raises(BundleError, match="no unconditional class, so guidance") as e:
        class_only.tokens_to_logits(class_id=1, guidance=2.0)
    assert "\n" not in str(e.value)
    seq = np.full((1, class_only.manifest.seq_len), class_only.manifest.mask_token_id)
    plain = class_only.tokens_to_logits(class_id=1, guidance=0.0)(seq)
    np.testing.assert_array_equal(plain, tiny_bundle.logits(seq, np.array([1])))


@pytest.mark.parametrize(
    ("synonyms", "message"),
    [
        ("kitty", "must be a list of 3 lists"),
        ([["a"], ["b"]], "must be a list of 3 lists"),
        ([["a"], ["b"], "c"], "class_synonyms of class 2"),
        ([["a"], [""], []], "class_synonyms of class 1"),
        ([["a"], [5], []], "class_synonyms of class 1"),
        ([["x"] * (MAX_SYNONYMS + 1), [], []], "class_synonyms of class 0"),
        ([["a" * 1001], [], []], "class_synonyms of class 0"),
    ],
)
def test_bad_class_synonyms_are_refused_in_one_line(tiny_bundle_path, tmp_path, synonyms, message):
    bad = _edited(tiny_bundle_path, tmp_path, class_synonyms=synonyms)
    with pytest.raises(BundleError, match=message) as e:
        read_manifest(bad, verify_hashes=False)
    assert "\n" not in str(e.value)


def test_synonyms_without_class_names_are_refused(tiny_bundle_path, tmp_path):
    bad = _edited(
        tiny_bundle_path, tmp_path, class_names=None, null_class_id=None, class_synonyms=[[]]
    )
    with pytest.raises(BundleError, match="class_synonyms given without class_names"):
        read_manifest(bad, verify_hashes=False)


def test_bundles_without_synonyms_read_as_before(tiny_bundle):
    m = tiny_bundle.manifest
    assert m.class_synonyms is None
    assert not m.needs_class
    assert m.class_id(None) == m.null_class_id


@pytest.fixture(scope="module")
def grid32(tmp_path_factory) -> Bundle:
    """A class-only bundle with a 32x32 token grid (as MaskGIT at 512 px), tiny weights."""
    import torch

    from engine.modeling.config import MageConfig, VqganConfig
    from engine.modeling.export import export_bundle
    from engine.modeling.mage import MAGE
    from engine.modeling.vqgan import VQGAN

    torch.manual_seed(0)
    vq = VqganConfig(
        image_size=128, ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, z_channels=32,
        codebook_size=64, codebook_dim=8,
    )  # fmt: skip
    mage = MageConfig(
        grid=32, codebook_size=64, num_class_slots=3, embed_dim=32, depth=1, num_heads=2,
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, fixed_class_slot=None,
        official_layout=False, image_size=128,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("grid32")
    export_bundle(
        VQGAN(vq).eval(), MAGE(mage).eval(), folder / "g", name="g32", source="random (tests)",
        class_names=["cat", "dog"], decoding={"steps": 4, "choice_temperature": 4.5},
    )  # fmt: skip
    path = _edited(folder / "g", folder, null_class_id=None)
    return Bundle(path, device="cpu")


@pytest.mark.slow  # exports a bundle
@pytest.mark.parametrize("preset", ["exact", "fast"])
def test_a_32x32_grid_edits_and_generates(grid32, preset):
    from engine.runtime.runs import edit_image
    from engine.runtime.speed import PRESETS

    m = grid32.manifest
    assert m.grid == [32, 32]
    assert m.seq_len == 1024
    assert m.downsample == 4
    assert m.needs_class
    rng = np.random.default_rng(0)
    photo = (rng.random((150, 200, 3)) * 255).astype(np.uint8)
    mask = np.zeros((150, 200), bool)
    mask[40:70, 60:110] = True
    settings = Settings(seeds=(2,), steps=3, class_name="dog", speed=PRESETS[preset])
    with pytest.raises(BundleError, match="needs a class"):
        edit_image(grid32, photo, mask, Settings(seeds=(2,), steps=3, speed=PRESETS[preset]))
    for _ in range(2):  # the second edit of the same photo reuses cached tokens (fast)
        result = edit_image(grid32, photo, mask, settings)
        assert result.tokens.shape == (1, 1024)
        patch = result.candidates[0].patch
        x0, y0, x1, y1 = patch.box
        assert x0 <= 60
        assert y0 <= 40
        assert x1 >= 110
        assert y1 >= 70
        assert x0 >= 0
        assert y0 >= 0
        assert x1 <= 200
        assert y1 <= 150
    made = run_to_end(run(grid32, Generate(), Settings(seeds=(1,), steps=2, class_name="cat")))
    assert made.tokens.shape == (1, 1024)
    assert (made.tokens < m.codebook_size).all()
