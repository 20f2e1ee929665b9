"""`--class` on the command line: a number, a name, a synonym, free text or a close spelling,
resolved to the model's class and said on stderr; the run and the PNG use the canonical name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pngtext import read_png_text

from conftest import make_tiny_models
from engine.cli import main
from engine.runtime.classes import imagenet_classes


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def err_lines(err: str) -> list[str]:
    return [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]


def class_only_copy(src: Path, folder: Path, synonyms) -> Path:
    """The bundle at `src` as a class-only model (no null class) with `class_synonyms`."""
    out = Path(shutil.copytree(src, folder / "class-only"))
    data = json.loads((out / "manifest.json").read_text())
    data.update(null_class_id=None, class_synonyms=synonyms)
    (out / "manifest.json").write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def cat_dog_boat(tiny_bundle_path, tmp_path_factory) -> Path:
    synonyms = [["kitty", "house cat"], ["hound"], ["dinghy"]]
    return class_only_copy(tiny_bundle_path, tmp_path_factory.mktemp("cdb"), synonyms)


@pytest.fixture(scope="module")
def imagenet_bundle(tmp_path_factory) -> Path:
    """A tiny random model with the 1000 ImageNet classes, class-only like an imported MaskGIT
    bundle, with the WordNet synonyms in its manifest."""
    from engine.modeling.export import export_bundle

    names, synonyms = imagenet_classes()
    vqgan, mage = make_tiny_models(num_classes=1000)
    folder = tmp_path_factory.mktemp("imagenet")
    export_bundle(
        vqgan,
        mage,
        folder / "tiny-imagenet",
        name="tiny-imagenet",
        source="random weights (tests)",
        class_names=names,
        decoding={"steps": 4, "choice_temperature": 4.5},
    )
    return class_only_copy(folder / "tiny-imagenet", folder, synonyms)


@pytest.fixture
def photo(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    mask = np.zeros((64, 96), np.uint8)
    mask[20:40, 30:60] = 255
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path / "photo.png", tmp_path / "mask.png"


def generate(bundle, out, cls, capsys, *more):
    args = ["generate", "-o", out, "--model", bundle, "--seed", 3, "--steps", 2, *more]
    return run(args + (["--class", cls] if cls is not None else []), capsys)


@pytest.mark.parametrize(
    ("typed", "canonical", "said"),
    [
        ("1", "dog", "class: 1 dog (class number 1)"),
        ("DOG", "dog", "class: 1 dog"),
        ("a black dog", "dog", "class: 1 dog (matched words 'dog')"),
        ("boats", "boat", "class: 2 boat (close spelling of 'boat')"),
    ],
)
def test_generate_resolves_the_class_on_a_model_with_names_only(
    tiny_bundle_path, tmp_path, capsys, typed, canonical, said
):
    out = tmp_path / "g.png"
    code, stdout, err = generate(tiny_bundle_path, out, typed, capsys)
    assert code == 0, err
    assert said in err_lines(err)
    assert stdout.split() == [str(out)]
    assert read_png_text(out)["mage:class"] == canonical


def test_generate_class_number_and_name_give_the_same_image(tiny_bundle_path, tmp_path, capsys):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    assert generate(tiny_bundle_path, a, "2", capsys)[0] == 0
    assert generate(tiny_bundle_path, b, "Boat", capsys)[0] == 0
    assert generate(tiny_bundle_path, c, "cat", capsys)[0] == 0
    pa, pb, pc = (np.asarray(Image.open(p)) for p in (a, b, c))
    assert np.array_equal(pa, pb)
    assert not np.array_equal(pa, pc)


def test_class_only_model_uses_manifest_synonyms(cat_dog_boat, photo, tmp_path, capsys):
    out = tmp_path / "kitty.png"
    code, _, err = generate(cat_dog_boat, out, "kitty", capsys)
    assert code == 0
    assert "class: 0 cat (matched synonym 'kitty')" in err_lines(err)
    assert read_png_text(out)["mage:class"] == "cat"
    image, mask = photo
    edited = tmp_path / "edited.png"
    args = ["edit", image, "--mask", mask, "-o", edited, "--model", cat_dog_boat, "--steps", 2]
    code, _, err = run([*args, "--class", "my old hound"], capsys)
    assert code == 0
    assert "class: 1 dog (matched words 'hound')" in err_lines(err)
    assert read_png_text(edited)["mage:class"] == "dog"


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (None, "needs a class: choose one (--class NAME)"),
        ("zebra", "unknown class 'zebra' (classes: 0 cat, 1 dog, 2 boat)"),
        ("7", "class number 7 is out of range: this model has classes 0..2"),
        ("  ", "no class given"),
    ],
)
def test_class_only_model_refuses_in_one_line_before_any_work(
    cat_dog_boat, photo, tmp_path, capsys, cls, message
):
    out = tmp_path / "never.png"
    code, stdout, err = generate(cat_dog_boat, out, cls, capsys)
    assert code == 2
    assert message in err_lines(err)[-1]
    assert "Traceback" not in err
    assert not out.exists()
    assert stdout == ""
    image, mask = photo
    args = ["edit", image, "--mask", mask, "-o", out, "--model", cat_dog_boat]
    code, _, err = run(args + (["--class", cls] if cls is not None else []), capsys)
    assert code == 2
    assert message in err_lines(err)[-1]
    assert not out.exists()


def test_unconditional_model_refuses_a_class(tiny_bundle):
    from dataclasses import replace

    from engine.cli.images import resolve_class
    from engine.runtime.errors import BundleError
    from engine.runtime.settings import Settings

    unconditional = replace(tiny_bundle.manifest, class_names=None, null_class_id=None)
    with pytest.raises(BundleError, match="is unconditional: it has no class 'dog'"):
        resolve_class(Settings(class_name="dog"), unconditional)
    assert resolve_class(Settings(), unconditional).class_name is None


@pytest.mark.slow
def test_imagenet_classes_by_number_name_synonym_and_free_text(
    imagenet_bundle, photo, tmp_path, capsys
):
    cases = [
        ("golden retriever", "golden retriever", "class: 207 golden retriever"),
        ("207", "golden retriever", "class: 207 golden retriever (class number 207)"),
        ("lighthouse at night", "beacon", "class: 437 beacon (matched words 'lighthouse')"),
        ("pharos", "beacon", "class: 437 beacon (matched synonym 'pharos')"),
        ("golden retreiver", "golden retriever", "class: 207 golden retriever (close spelling"),
    ]
    for typed, canonical, said in cases:
        out = tmp_path / "g.png"
        code, _, err = generate(imagenet_bundle, out, typed, capsys, "--overwrite")
        assert code == 0, err
        assert any(line.startswith(said) for line in err_lines(err)), err
        assert read_png_text(out)["mage:class"] == canonical
    image, mask = photo
    out = tmp_path / "e.png"
    args = ["edit", image, "--mask", mask, "-o", out, "--model", imagenet_bundle, "--steps", 2]
    code, _, err = run([*args, "--class", "Lighthouse"], capsys)
    assert code == 0
    assert "class: 437 beacon (matched synonym 'lighthouse')" in err_lines(err)
    code, _, err = generate(imagenet_bundle, tmp_path / "x.png", "crane", capsys)
    assert code == 2
    assert "ambiguous: it could be 134 crane (bird), 517 crane (machine)" in err_lines(err)[-1]
