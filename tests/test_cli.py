"""The command line contract: outputs, settings text chunks, exit code 2 with one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pngtext import read_png_text

from conftest import REPO
from corpus import damaged_bundle
from engine.cli import main
from engine.runtime.imageio import file_digest


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_line(err: str) -> str:
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.fixture
def photo_files(tmp_path):
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:200, 0:300]
    rgb = np.stack([x % 256, y, (x + y) % 256], -1).astype(np.uint8)
    rgb = np.clip(rgb + rng.integers(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    image = tmp_path / "photo.png"
    Image.fromarray(rgb).save(image)
    mask = np.zeros((200, 300), np.uint8)
    mask[80:120, 130:170] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    return image, mask_path, rgb, mask > 0


def test_edit_writes_png_with_settings(tiny_bundle_path, photo_files, tmp_path, capsys):
    image, mask, rgb, painted = photo_files
    before = file_digest(image), file_digest(mask)
    out = tmp_path / "out.png"
    code, stdout, _ = run(
        [
            "edit",
            image,
            "--mask",
            mask,
            "-o",
            out,
            "--model",
            tiny_bundle_path,
            "--seed",
            11,
            "--steps",
            6,
            "--temperature",
            3.0,
        ],
        capsys,
    )
    assert code == 0
    assert str(out) in stdout
    assert (file_digest(image), file_digest(mask)) == before  # inputs untouched
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == rgb.shape
    changed = (result != rgb).any(-1)
    assert changed[painted].mean() > 0.5
    assert not changed[:40].any()
    assert not changed[:, :60].any()
    text = read_png_text(out)
    assert text["mage:model"] == "tiny"
    assert text["mage:seed"] == "11"
    assert text["mage:steps"] == "6"
    assert text["mage:temperature"] == "3"
    again = tmp_path / "again.png"
    run(
        [
            "edit",
            image,
            "--mask",
            mask,
            "-o",
            again,
            "--model",
            tiny_bundle_path,
            "--seed",
            11,
            "--steps",
            6,
            "--temperature",
            3.0,
        ],
        capsys,
    )
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))
    assert text["mage:seamless"] == "yes"
    # the seamless blend is for model-only fills (the texture stage is seamless by itself)
    model_only = {}
    for name, flags in (("blended", []), ("plain", ["--no-seamless"])):
        model_only[name] = tmp_path / f"{name}.png"
        run(
            [
                "edit",
                image,
                "--mask",
                mask,
                "-o",
                model_only[name],
                "--model",
                tiny_bundle_path,
                "--seed",
                11,
                "--steps",
                6,
                "--temperature",
                3.0,
                "--texture",
                "model",
                *flags,
            ],
            capsys,
        )
    plain = model_only["plain"]
    assert read_png_text(plain)["mage:seamless"] == "no"
    plain_rgb = np.asarray(Image.open(plain).convert("RGB"))
    blended_rgb = np.asarray(Image.open(model_only["blended"]).convert("RGB"))
    assert not np.array_equal(plain_rgb, blended_rgb)  # the blend changes the fill ...
    assert np.array_equal(plain_rgb[:40], rgb[:40])  # ... and nothing far from the mask
    assert np.array_equal(plain_rgb[:, :60], rgb[:, :60])


def test_edit_keeps_alpha(tiny_bundle_path, photo_files, tmp_path, capsys):
    _image, mask, rgb, _ = photo_files
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :50] = 40
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(rgba)
    out = tmp_path / "out.png"
    code, _, _ = run(["edit", rgba, "--mask", mask, "-o", out, "--model", tiny_bundle_path], capsys)
    assert code == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (200, 300, 4)
    assert np.array_equal(result[..., 3], alpha)


def test_generate_candidates_and_classes(tiny_bundle_path, tmp_path, capsys):
    out = tmp_path / "gen.png"
    code, _stdout, _ = run(
        [
            "generate",
            "-o",
            out,
            "-n",
            2,
            "--seed",
            5,
            "--class",
            "dog",
            "--model",
            tiny_bundle_path,
        ],
        capsys,
    )
    assert code == 0
    files = [tmp_path / "gen-5.png", tmp_path / "gen-6.png"]
    assert all(f.exists() for f in files)
    assert read_png_text(files[1])["mage:class"] == "dog"
    assert read_png_text(files[1])["mage:seed"] == "6"
    code, _, err = run(
        ["generate", "-o", tmp_path / "x.png", "--class", "zebra", "--model", tiny_bundle_path],
        capsys,
    )
    assert code == 2
    assert "unknown class 'zebra'" in last_line(err)


def test_extend(tiny_bundle_path, photo_files, tmp_path, capsys):
    image, _, rgb, _ = photo_files
    out = tmp_path / "wide.png"
    code, _, _ = run(
        [
            "extend",
            image,
            "--side",
            "right",
            "--tokens",
            2,
            "-o",
            out,
            "--model",
            tiny_bundle_path,
            "--seed",
            1,
        ],
        capsys,
    )
    assert code == 0
    wide = np.asarray(Image.open(out).convert("RGB"))
    assert wide.shape[0] == 200
    assert wide.shape[1] > 300
    assert np.array_equal(wide[:, :250], rgb[:, :250])


@pytest.mark.parametrize(
    "case",
    [
        "same-as-input",
        "exists",
        "missing-folder",
        "not-png",
        "empty-mask",
        "mask-size",
        "bad-image",
        "missing-image",
    ],
)
def test_bad_input_exit_2_one_line(case, tiny_bundle_path, photo_files, tmp_path, capsys):
    image, mask, _, _ = photo_files
    out = tmp_path / "out.png"
    expect = {
        "same-as-input": "is the input file",
        "exists": "exists (use --overwrite",
        "missing-folder": "output folder does not exist",
        "not-png": "must be a .png",
        "empty-mask": "mask is empty",
        "mask-size": "is 10x10 but the image is 300x200",
        "bad-image": "not an image",
        "missing-image": "not found",
    }[case]
    if case == "same-as-input":
        out = image
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "missing-folder":
        out = tmp_path / "nope" / "out.png"
    elif case == "not-png":
        out = tmp_path / "out.jpg"
    elif case == "empty-mask":
        Image.fromarray(np.zeros((200, 300), np.uint8)).save(mask)
    elif case == "mask-size":
        Image.fromarray(np.full((10, 10), 255, np.uint8)).save(mask)
    elif case == "bad-image":
        image = tmp_path / "fake.png"
        image.write_text("this is not a picture")
    elif case == "missing-image":
        image = tmp_path / "ghost.png"
    digest = file_digest(out) if out.exists() else None
    code, _, err = run(
        ["edit", image, "--mask", mask, "-o", out, "--model", tiny_bundle_path], capsys
    )
    assert code == 2
    line = last_line(err)
    assert line.startswith("error: "), err
    assert expect in line.lower(), err
    if digest:
        assert file_digest(out) == digest  # never overwritten


def test_scale_mask_on_request(tiny_bundle_path, photo_files, tmp_path, capsys):
    image, _mask, _, _ = photo_files
    small = tmp_path / "small.png"
    m = np.zeros((20, 30), np.uint8)
    m[8:12, 13:17] = 255
    Image.fromarray(m).save(small)
    code, _, _ = run(
        [
            "edit",
            image,
            "--mask",
            small,
            "--scale-mask",
            "-o",
            tmp_path / "o.png",
            "--model",
            tiny_bundle_path,
        ],
        capsys,
    )
    assert code == 0


@pytest.mark.parametrize(
    ("how", "expect"),
    [
        ("missing-file", "model file missing"),
        ("hash-mismatch", "sha256 does not match"),
        ("truncated-onnx", "is refused: damaged"),
        ("newer-version", "newer than this app"),
        ("shapes", "predicts 64 codes but the manifest says codebook_size 128"),
        ("no-manifest", "manifest.json is missing"),
        ("bad-json", "is damaged"),
    ],
)
def test_damaged_models(how, expect, tiny_bundle_path, tmp_path):
    broken = damaged_bundle(tiny_bundle_path, tmp_path, how)
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "main.py"),
            "generate",
            "-o",
            str(tmp_path / "g.png"),
            "--model",
            str(broken),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert expect in proc.stderr
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("command", ["edit", "generate", "extend", "import-mage", "classify"])
def test_help(command):
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "usage:" in proc.stdout


def test_export_and_train_take_their_own_flags(tiny_bundle_path, tmp_path, caplog):
    # the documented `main.py export --tokenizer ...` form: the first argument is an option
    missing = tmp_path / "missing.pt"
    code = main(
        [
            "export",
            "--tokenizer",
            str(missing),
            "--from-bundle",
            str(tiny_bundle_path),
            "-o",
            str(tmp_path / "out"),
            "--name",
            "x",
        ]
    )
    assert code == 2
    assert any("checkpoint not found" in r.getMessage() for r in caplog.records)
    with pytest.raises(SystemExit) as done:
        main(["export", "--help"])
    assert done.value.code == 0
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    assert not (tmp_path / "out").exists()


def test_texture_choice_is_applied_and_recorded(tiny_bundle_path, photo_files, tmp_path, capsys):
    image, mask, rgb, painted = photo_files
    images = {}
    for texture in ("photo", "model", "classic"):
        out = tmp_path / f"out-{texture}.png"
        code, _, err = run(
            ["edit", image, "--mask", mask, "-o", out, "--model", tiny_bundle_path, "--seed", 4]
            + ["--texture", texture],
            capsys,
        )
        assert code == 0, err
        assert read_png_text(out)["mage:texture"] == texture
        images[texture] = np.asarray(Image.open(out).convert("RGB"))
        assert np.array_equal(images[texture][~painted], rgb[~painted])  # only the mask changes
        assert ("adding the photo's texture" in err) == (texture != "model")
        if texture == "classic":
            assert "1/1 " in err  # no decoding steps to count
    for a, b in (("photo", "model"), ("photo", "classic"), ("model", "classic")):
        assert np.abs(images[a][painted].astype(int) - images[b][painted]).mean() > 1.0
    code, _, err = run(
        ["edit", image, "--mask", mask, "-o", tmp_path / "x.png", "--texture", "paint"], capsys
    )
    assert code == 2
    assert "--texture" in err


def test_class_samples_are_applied_and_recorded(tiny_bundle_path, photo_files, tmp_path, capsys):
    image, mask, _, _ = photo_files
    out = tmp_path / "dog.png"
    base = ["edit", image, "--mask", mask, "--model", tiny_bundle_path, "--class", "dog"]
    code, _, err = run([*base, "-o", out, "--class-samples", 2], capsys)
    assert code == 0, err
    assert read_png_text(out)["mage:class_samples"] == "2"
    code, _, err = run([*base, "-o", tmp_path / "default.png"], capsys)
    assert code == 0, err
    assert read_png_text(tmp_path / "default.png")["mage:class_samples"] == "4"


def test_extend_texture_is_recorded(tiny_bundle_path, photo_files, tmp_path, capsys):
    image, _, _, _ = photo_files
    for texture in ("photo", "model"):
        out = tmp_path / f"ext-{texture}.png"
        code, _, _ = run(
            ["extend", image, "--tokens", 2, "-o", out, "--model", tiny_bundle_path]
            + ["--seed", 1, "--texture", texture],
            capsys,
        )
        assert code == 0
        assert read_png_text(out)["mage:texture"] == texture
    code, _, _err = run(["extend", image, "-o", tmp_path / "c.png", "--texture", "classic"], capsys)
    assert code == 2
