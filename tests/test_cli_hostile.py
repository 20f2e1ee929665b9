"""The CLI never destroys a user's files, never hangs on its own flags, and never shows a
traceback: hostile flags, output names, bundles, checkpoints and export targets."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pngtext import read_png_text

from conftest import REPO
from corpus import HOSTILE_MANIFESTS, damaged_bundle
from engine import cli
from engine.cli import build_parser, main
from engine.modeling.export import ExportError, check_target, export_bundle
from engine.runtime.imageio import file_digest


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    return errors[0]


def folder_state(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def photo(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    image = tmp_path / "photo.png"
    Image.fromarray(rgb).save(image)
    mask = np.zeros((48, 64), np.uint8)
    mask[16:32, 24:40] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    return image, mask_path


BAD_FLAGS = [
    ["--seed", "-1"],
    ["--seed", "1e3"],
    ["--seed", str(2**40)],
    ["--temperature", "nan"],
    ["--temperature", "inf"],
    ["--temperature", "-1"],
    ["--sample-temperature", "inf"],
    ["--sample-temperature", "0"],
    ["--ring", "-1"],
    ["--ring", "100000"],
    ["--coverage", "1.5"],
    ["--coverage", "nan"],
    ["--feather", "nan"],
    ["--feather", "-2"],
    ["--guidance", "nan"],
    ["--guidance", "inf"],
    ["--guidance", "-1"],
    ["--class-samples", "0"],
    ["--class-samples", "17"],
    ["--class-samples", "2.5"],
    ["--steps", "0"],
    ["--steps", str(10**9)],
    ["-n", "0"],
    ["-n", "1000000"],
    ["--steps", "many"],
]


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=lambda f: " ".join(f))
def test_bad_flags_are_refused_at_parse_time(flags, photo, tmp_path, capsys):
    image, mask = photo
    out = tmp_path / "out.png"
    start = time.monotonic()
    code, _, err = run(["edit", image, "--mask", mask, "-o", out, *flags], capsys)
    assert code == 2
    assert one_error(err).startswith("error: argument")
    assert time.monotonic() - start < 5
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["extend", "IMG", "--tokens", "0"],
        ["extend", "IMG", "--tokens", "-3"],
        ["classify", "IMG", "-k", "0"],
        ["classify", "IMG", "--batch-size", "0"],
        ["probe", "--data", "D", "-o", "h.npz", "--val", "1"],
        ["probe", "--data", "D", "-o", "h.npz", "--lr", "nan"],
        ["probe", "--data", "D", "-o", "h.npz", "--epochs", str(10**9)],
        ["fewshot", "--data", "D", "-o", "h.npz", "--temperature", "0"],
        ["fewshot", "--data", "D", "-o", "h.npz", "-k", "0"],
        ["generate", "-o", "g.png", "--bogus"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_flags_of_every_command(argv, photo, capsys):
    image, _ = photo
    code, _, err = run([str(image) if a == "IMG" else a for a in argv], capsys)
    assert code == 2
    assert one_error(err)


NUMERIC = {
    "--seed": (0, cli.MAX_SEED),
    "-n": (1, cli.MAX_CANDIDATES),
    "--steps": (1, cli.MAX_STEPS),
    "--ring": (0, cli.MAX_RING),
    "--temperature": (0, cli.MAX_TEMPERATURE),
    "--coverage": (0, 1),
    "--feather": (0, cli.MAX_FEATHER),
    "--guidance": (0, cli.MAX_GUIDANCE),
    "--sample-temperature": (0, cli.MAX_TEMPERATURE),
}
DEST = {"-n": "candidates", "--sample-temperature": "sample_temperature"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flag=st.sampled_from(sorted(NUMERIC)),
    value=st.one_of(
        st.integers(-(10**12), 10**12).map(str), st.floats().map(repr), st.text(max_size=8)
    ),
)
def test_flag_space_parses_within_bounds_or_refuses(flag, value, capsys):
    """Property: any value of a numeric flag is either parsed to a finite number within the
    documented bounds or refused with exit 2 and one line."""
    parser = build_parser()
    try:
        args = parser.parse_args(["generate", "-o", "x.png", f"{flag}={value}"])
    except SystemExit as done:
        assert done.code == 2
        assert one_error(capsys.readouterr().err)
        return
    got = getattr(args, DEST.get(flag, flag.lstrip("-").replace("-", "_")))
    low, high = NUMERIC[flag]
    assert np.isfinite(got)
    assert low <= got <= high


def test_candidate_names_never_overwrite_an_input(photo, tiny_bundle_path, tmp_path, capsys):
    image, mask = photo
    victim = tmp_path / "out-6.png"  # what candidate 2 of --seed 5 would be called
    victim.write_bytes(image.read_bytes())
    before = file_digest(victim)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(
            [
                "edit",
                victim,
                "--mask",
                mask,
                "-o",
                tmp_path / "out.png",
                "-n",
                2,
                "--seed",
                5,
                "--model",
                tiny_bundle_path,
                *extra,
            ],
            capsys,
        )
        assert code == 2
        assert "out-6.png" in one_error(err)
        assert file_digest(victim) == before
        assert not (tmp_path / "out-5.png").exists()


def test_output_names_are_checked_before_any_work(photo, tmp_path, capsys):
    image, mask = photo
    missing_model = tmp_path / "no-model"  # would fail later, if the names passed
    code, _, err = run(
        [
            "edit",
            image,
            "--mask",
            mask,
            "-o",
            tmp_path / ("x" * 236 + ".png"),
            "-n",
            2,
            "--seed",
            1,
            "--model",
            missing_model,
        ],
        capsys,
    )
    assert code == 2
    assert "too long" in one_error(err)
    code, _, err = run(
        ["generate", "-o", tmp_path / ("y" * 260 + ".png"), "--model", missing_model], capsys
    )
    assert code == 2
    assert "too long" in one_error(err)
    (tmp_path / "taken-3.png").write_bytes(b"mine")
    code, _, err = run(
        ["generate", "-o", tmp_path / "taken.png", "-n", 3, "--seed", 1, "--model", missing_model],
        capsys,
    )
    assert code == 2
    assert "taken-3.png exists" in one_error(err)
    assert (tmp_path / "taken-3.png").read_bytes() == b"mine"


def test_non_utf8_file_names(tiny_bundle_path, photo, tmp_path, capsys):
    _, mask = photo
    folder = os.fsencode(tmp_path)
    name = os.path.join(folder, b"ph\xffoto.png")
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(os.fsdecode(name))
    out = tmp_path / "fixed.png"
    code, stdout, err = run(
        [
            "edit",
            os.fsdecode(name),
            "--mask",
            mask,
            "-o",
            out,
            "--model",
            tiny_bundle_path,
            "--seed",
            1,
        ],
        capsys,
    )
    assert code == 0, err
    assert read_png_text(out)["mage:source"] == "ph\ufffdoto.png"
    odd_out = os.fsdecode(os.path.join(folder, b"r\xfesult.png"))
    code, stdout, err = run(
        ["generate", "-o", odd_out, "--model", tiny_bundle_path, "--class", "d\udcffg"], capsys
    )
    assert code == 2
    assert "unknown class" in one_error(err)
    code, stdout, err = run(["generate", "-o", odd_out, "--model", tiny_bundle_path], capsys)
    assert code == 0
    assert os.path.exists(odd_out)
    assert "\ufffd" in stdout


def test_no_exception_escapes_as_a_traceback(monkeypatch, tmp_path, capsys):
    def boom(args):
        raise KeyError("something internal")

    monkeypatch.setitem(cli.COMMANDS, "generate", boom)
    code, _, err = run(["generate", "-o", tmp_path / "g.png"], capsys)
    assert code == 1
    assert "internal error (KeyError" in one_error(err)
    assert "report" in err

    def recursion(args):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(cli.COMMANDS, "generate", recursion)
    assert run(["generate", "-o", tmp_path / "g.png"], capsys)[0] == 1


def test_stale_temp_files_of_killed_runs_are_cleaned(tiny_bundle_path, tmp_path, capsys):
    out = tmp_path / "g.png"
    old = tmp_path / ".g.png.ab12cd34.tmp"  # left by a run killed an hour ago
    fresh = tmp_path / ".g.png.ef56gh78.tmp"  # another run may be writing it right now
    other = tmp_path / ".notes.txt.ab12cd34.tmp"  # not ours to touch
    for path in (old, fresh, other):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 2 * cli.STALE_TEMP_SECONDS
    os.utime(old, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    code, _, err = run(["generate", "-o", out, "--model", tiny_bundle_path], capsys)
    assert code == 0, err
    assert not old.exists()
    assert fresh.exists()
    assert other.exists()
    assert out.exists()


def test_extend_keeps_transparency_and_makes_n_candidates(tiny_bundle_path, tmp_path, capsys):
    rgb = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:, :20] = 0
    alpha[:10] = 100
    src = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(src)
    code, _stdout, err = run(
        [
            "extend",
            src,
            "--side",
            "left",
            "--tokens",
            2,
            "-n",
            2,
            "--seed",
            4,
            "-o",
            tmp_path / "wide.png",
            "--model",
            tiny_bundle_path,
        ],
        capsys,
    )
    assert code == 0, err
    results = [np.asarray(Image.open(tmp_path / f"wide-{s}.png")) for s in (4, 5)]
    for result in results:
        assert result.shape[2] == 4
        assert result.shape[1] > 64
        grow = result.shape[1] - 64
        assert np.array_equal(result[:, grow:, 3], alpha)  # original alpha where it was
        assert np.array_equal(result[:, :grow, 3], np.repeat(alpha[:, :1], grow, axis=1))
    assert not np.array_equal(results[0][..., :3], results[1][..., :3])


def test_hostile_bundles_through_the_cli(tiny_bundle_path, tmp_path, capsys):
    for how, expect in HOSTILE_MANIFESTS.items():
        broken = damaged_bundle(tiny_bundle_path, tmp_path / how, how)
        out = tmp_path / f"{how}.png"
        code, _, err = run(["generate", "-o", out, "--model", broken], capsys)
        assert code == 2, (how, err)
        assert expect in one_error(err), (how, err)
        assert not out.exists()


def test_cuda_notice_is_printed_once(tiny_bundle_path, tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from engine.runtime import sessions\n"
        "sessions.cuda_driver_present = lambda: False\n"
        "from engine.cli import main; sys.exit(main(sys.argv[2:]))\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(REPO),
            "generate",
            "--device",
            "cuda",
            "-o",
            str(tmp_path / "g.png"),
            "--model",
            str(tiny_bundle_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # without a GPU the notice says so once; with one, no notice at all
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("notice:") <= 1
    assert "\x1b[" not in proc.stderr


# -- export / import-mage targets --------------------------------------------------------------


def test_overwrite_refuses_anything_but_a_bundle(tiny_bundle_path, tmp_path, monkeypatch, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"precious")
    ckpt = tmp_path / "mage.pth"
    ckpt.write_bytes(b"weights")
    for target in (photos, Path(tmp_path.anchor), Path.home()):
        with pytest.raises(ExportError, match=r"refusing|exists and is not"):
            check_target(target, overwrite=True)
    code, _, err = run(["import-mage", ckpt, "-o", photos, "--overwrite"], capsys)
    assert code == 2
    assert "not a model bundle" in one_error(err)
    assert (photos / "holiday.jpg").read_bytes() == b"precious"
    bundle = Path(__import__("shutil").copytree(tiny_bundle_path, tmp_path / "bundle"))
    big_input = bundle / "mage.pth"  # the checkpoint sits in the output folder
    big_input.write_bytes(b"800 MB of weights")
    code, _, err = run(["import-mage", big_input, "-o", bundle, "--overwrite"], capsys)
    assert code == 2
    assert "holds the input" in one_error(err)
    big_input.unlink()
    (bundle / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"holds notes\.txt"):
        check_target(bundle, overwrite=True)
    (bundle / "notes.txt").unlink()
    check_target(bundle, overwrite=True)  # a plain bundle may be replaced
    monkeypatch.chdir(bundle)
    with pytest.raises(ExportError, match="current folder"):
        check_target(Path("."), overwrite=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportError, match="refusing to write a bundle to"):
        check_target(Path(".."), overwrite=True)  # holds the current and home folders
    assert (tmp_path / "bundle" / "manifest.json").is_file()


@pytest.mark.slow  # a whole export of the tiny models
def test_overwrite_swaps_a_bundle_atomically(tiny_bundle_path, tmp_path):
    from conftest import make_tiny_models

    target = Path(__import__("shutil").copytree(tiny_bundle_path, tmp_path / "out"))
    (target / "manifest.json").chmod(0o644)
    vqgan, mage = make_tiny_models(seed=1)
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_bundle(
            vqgan, mage, target, name="second", source="test", class_names=["a", "b", "c"]
        )
    export_bundle(
        vqgan,
        mage,
        target,
        name="second",
        source="test",
        class_names=["a", "b", "c"],
        overwrite=True,
    )
    from engine.runtime.bundle import Bundle

    assert Bundle(target, device="cpu").name == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old folder left


def _bad_checkpoint(payload: str, folder: Path) -> Path:
    ckpt = folder / "tok.pth"
    if payload == "pickle":

        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned > " + str(folder / "pwned"),))

        ckpt.write_bytes(pickle.dumps({"kind": "tokenizer", "x": Evil()}))
    elif payload == "list":
        torch.save([1, 2, 3], ckpt)
    elif payload == "empty":
        ckpt.write_bytes(b"")
    else:
        ckpt.write_text("not a checkpoint")
    return ckpt


def _export_argv(ckpt: Path, bundle: Path, folder: Path) -> list[str]:
    return [
        "export", "--tokenizer", str(ckpt), "--from-bundle", str(bundle),
        "-o", str(folder / "out"), "--name", "x",
    ]  # fmt: skip


@pytest.mark.parametrize("payload", ["pickle", "list", "empty", "text"])
def test_export_refuses_bad_checkpoints_with_one_error(payload, tiny_bundle_path, tmp_path, caplog):
    ckpt = _bad_checkpoint(payload, tmp_path)
    code = main(_export_argv(ckpt, tiny_bundle_path, tmp_path))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2
    assert len(errors) == 1
    assert errors[0].exc_info is None
    assert "tok.pth" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a process that imports torch
def test_export_of_a_hostile_pickle_prints_one_line(tiny_bundle_path, tmp_path):
    """What a user sees: `main.py export` in its own process, one line on stderr."""
    ckpt = _bad_checkpoint("pickle", tmp_path)
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), *_export_argv(ckpt, tiny_bundle_path, tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "tok.pth" in proc.stderr
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "out").exists()
