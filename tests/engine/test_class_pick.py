"""Fill as class keeps, per candidate, the sample the model's own recognition head reads most as
the class; without a head (or for a class it does not know) a class fill is one sample."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from engine.runtime.bundle import Bundle
from engine.runtime.class_pick import ClassPick, class_pick, sample_seeds
from engine.runtime.recognition import fit_centroid, image_features, store_in_bundle
from engine.runtime.runs import edit_image
from engine.runtime.settings import Settings


def photo(seed: int) -> np.ndarray:
    y, x = np.mgrid[0:64, 0:64] / 64
    rng = np.random.default_rng(seed)
    img = np.stack([x * 200 + 30, y * 180 + 40, (x + y) * 90 + 20], -1)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


SEED = 4  # a seed whose pick is not its first sample
MASK = np.zeros((64, 64), bool)
MASK[20:44, 18:42] = True


@pytest.fixture(scope="module")
def headed_bundle(tiny_bundle_path, tmp_path_factory) -> Bundle:
    """The tiny bundle with a nearest-centroid head over its classes (cat, dog, boat)."""
    folder = tmp_path_factory.mktemp("headed") / "tiny"
    shutil.copytree(tiny_bundle_path, folder)
    bundle = Bundle(folder, device="cpu")
    images = [photo(seed) for seed in range(9)]
    features = image_features(bundle, images)
    labels, names = np.arange(9) % 3, ["cat", "dog", "boat"]
    head = fit_centroid(features, labels, names, temperature=0.5, bundle=bundle)
    store_in_bundle(bundle, head, "photos")
    return Bundle(folder, device="cpu")


def test_sample_seeds_start_with_the_candidates_own_and_depend_on_it_alone():
    seeds = sample_seeds((5, 9), 4)
    assert len(seeds) == 8
    assert len(set(seeds)) == 8
    assert seeds[0] == 5
    assert seeds[4] == 9
    assert sample_seeds((9,), 4) == seeds[4:]  # another candidate beside it changes nothing
    assert sample_seeds((5,), 1) == (5,)
    assert all(0 <= s < 2**31 for s in seeds)


def test_best_rows_takes_each_candidates_best_sample():
    scores = np.array([0.1, 0.7, 0.3, 0.2, 0.9, 0.9])
    pick = ClassPick(3, lambda images: scores[[int(image[0, 0, 0]) for image in images]])
    images = [np.full((4, 4, 3), k, np.uint8) for k in range(6)]
    assert pick.best_rows(images, 2).tolist() == [1, 4]  # a tie keeps the first


def test_a_class_fill_keeps_the_sample_the_head_reads_most_as_the_class(headed_bundle):
    """Every sample is finished like a candidate (its texture seeded by its own seed); the head
    reads each finished fill of the context square and the best one is kept."""
    rgb = photo(20)
    asked = Settings(class_name="dog", seeds=(SEED,))
    picked = edit_image(headed_bundle, rgb, MASK, asked)
    assert picked.seeds == (SEED,)
    pick = class_pick(headed_bundle, "dog", asked.class_samples)
    assert pick is not None
    singles = [
        edit_image(headed_bundle, rgb, MASK, replace(asked, seeds=(s,), class_samples=1))
        for s in sample_seeds((SEED,), asked.class_samples)
    ]
    scores = pick.score([single.candidates[0].patch.rgb for single in singles])
    best = int(np.argmax(scores))
    assert best != 0  # for this seed the pick is not the plain sample
    assert np.array_equal(picked.tokens, singles[best].tokens)
    assert np.array_equal(picked.images[0], singles[best].images[0])
    assert not np.array_equal(picked.images[0], singles[0].images[0])
    assert np.array_equal(picked.images[0][~MASK], rgb[~MASK])
    # the same seed gives the same fill
    assert np.array_equal(edit_image(headed_bundle, rgb, MASK, asked).images[0], picked.images[0])


def test_without_a_head_or_for_a_class_it_does_not_know_a_class_fill_is_one_sample(
    tiny_bundle, headed_bundle
):
    assert class_pick(tiny_bundle, "dog", 4) is None  # no head
    assert class_pick(headed_bundle, "dog", 1) is None
    assert class_pick(headed_bundle, None, 4) is None
    assert class_pick(headed_bundle, "giraffe", 4) is None
    rgb = photo(21)
    asked = Settings(class_name="dog", seeds=(3,))
    default = edit_image(tiny_bundle, rgb, MASK, asked)
    single = edit_image(tiny_bundle, rgb, MASK, replace(asked, class_samples=1))
    assert np.array_equal(default.images[0], single.images[0])


def test_class_samples_are_checked_and_recorded(tiny_bundle):
    with pytest.raises(ValueError, match="class samples"):
        Settings(class_samples=0)
    with pytest.raises(ValueError, match="class samples"):
        Settings(class_samples=17)
    manifest = tiny_bundle.manifest
    assert Settings(class_name="dog").describe(manifest)["mage:class_samples"] == "4"
    assert "mage:class_samples" not in Settings().describe(manifest)
