"""Training: losses fall, resume is exact, torchrun (gloo, 2 CPU processes) follows one process,
and trained checkpoints export to a bundle that onnxruntime loads.

Everything runs on tiny models (32 px images, 4x4 or 8x8 tokens) over synthetic pictures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from engine.modeling import data as data_mod
from engine.modeling import train
from engine.modeling.training.checkpoints import load_checkpoint
from engine.modeling.training.tokenizer_task import TokenizerTask

ROOT = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = [
    "--image-size",
    "32",
    "--ch",
    "32",
    "--ch-mult",
    "1,1,2",
    "--z-channels",
    "32",
    "--codebook-size",
    "64",
    "--codebook-dim",
    "8",
    "--batch",
    "8",
    "--warmup",
    "2",
    "--restart-every",
    "3",
    "--log-seconds",
    "0",
    "--eval-every",
    "4",
]
TINY_MAGE = [
    "--image-size",
    "32",
    "--dim",
    "32",
    "--depth",
    "2",
    "--heads",
    "2",
    "--decoder-dim",
    "32",
    "--decoder-depth",
    "1",
    "--decoder-heads",
    "2",
    "--batch",
    "8",
    "--warmup",
    "3",
    "--lr",
    "5e-3",
    "--log-seconds",
    "0",
    "--eval-every",
    "4",
]


def _picture(rng: np.random.Generator, tint: int) -> Image.Image:
    h, w = (int(v) for v in rng.integers(40, 72, 2))
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / w * 255, y / h * 255, np.full((h, w), tint)], -1).astype(np.uint8)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse([x0, y0, x0 + 10, y0 + 10], fill=colour)
    return im


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two classes of 10 synthetic pictures; split.json holds out two of them."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    split = {}
    for cls, tint in (("sky", 200), ("sea", 40)):
        (root / cls).mkdir()
        for i in range(10):
            _picture(rng, tint).save(root / cls / f"{i}.png")
            split[f"{cls}/{i}.png"] = "val" if i == 0 else "train"
    (root / "split.json").write_text(json.dumps(split))
    return root


@pytest.fixture(scope="module")
def tokenizer_run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    assert (
        train.main(
            [
                "tokenizer",
                "--data",
                str(photos),
                "--out",
                str(out),
                "--steps",
                "30",
                *TINY_TOKENIZER,
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def mage_run(tokenizer_run, photos, tmp_path_factory) -> Path:
    """40 steps of the tiny class-conditional MAGE on the tokenizer run's codes."""
    out = tmp_path_factory.mktemp("mage")
    flags = ["--data", str(photos), "--out", str(out)]
    flags += ["--tokenizer", str(tokenizer_run / "tokenizer.pt"), "--steps", "40"]
    assert train.main(["mage", *flags, *TINY_MAGE]) == 0
    return out


def _losses(run: Path, kind: str) -> list[float]:
    rows = [json.loads(line) for line in (run / f"log_{kind}.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r["loss"] for r in rows if "loss" in r}  # a resume rewrites a step
    return [by_step[s] for s in sorted(by_step)]


def test_split_and_batches_depend_only_on_seed_and_step(photos):
    ds = data_mod.load_data(photos, 32)
    assert ds.class_names == ["sea", "sky"]
    assert sorted(ds.val.names) == ["sea/0.png", "sky/0.png"]
    a = data_mod.random_params(3, 17, 8, len(ds.train))
    b = data_mod.random_params(3, 17, 8, len(ds.train))
    x = data_mod.crops(ds.train, a, 32)
    assert x.shape == (8, 3, 32, 32)
    assert x.min() >= 0
    assert x.max() <= 1
    assert torch.equal(x, data_mod.crops(ds.train, b, 32))
    # one epoch of steps visits every training image exactly once
    seen = torch.cat([data_mod.batch_indices(0, s, 6, 18) for s in range(3)])
    assert sorted(seen.tolist()) == list(range(18))


@pytest.mark.slow
def test_tokenizer_and_mage_losses_fall(tokenizer_run, mage_run):
    tok = _losses(tokenizer_run, "tokenizer")
    assert np.mean(tok[-5:]) < 0.7 * np.mean(tok[:3])
    ckpt = torch.load(tokenizer_run / "tokenizer.pt", weights_only=True)
    assert ckpt["kind"] == "tokenizer"
    assert ckpt["step"] == 30
    assert ckpt["metrics"]["val_psnr"] > 10
    assert ckpt["metrics"]["train_codes_used"] > 8
    mage = _losses(mage_run, "mage")
    assert np.mean(mage[-5:]) < np.mean(mage[:5]) - 0.08
    ckpt = torch.load(mage_run / "mage.pt", weights_only=True)
    assert ckpt["class_names"] == ["sea", "sky"]
    assert ckpt["config"]["num_class_slots"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tokenizer", "mage"])
def test_resume_continues_exactly(kind, tokenizer_run, photos, tmp_path):
    if kind == "tokenizer":
        flags = ["tokenizer", "--data", str(photos), *TINY_TOKENIZER]
    else:
        flags = [
            "mage",
            "--data",
            str(photos),
            "--tokenizer",
            str(tokenizer_run / "tokenizer.pt"),
            *TINY_MAGE,
        ]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main([*flags, "--out", str(whole), "--steps", "8"]) == 0
    assert train.main([*flags, "--out", str(parts), "--steps", "8", "--stop-after", "4"]) == 0
    assert torch.load(parts / f"{kind}.pt", weights_only=True)["step"] == 4
    assert train.main([*flags, "--out", str(parts), "--steps", "8"]) == 2  # refuses to clobber
    assert train.main([*flags, "--out", str(parts), "--steps", "8", "--resume"]) == 0
    np.testing.assert_allclose(_losses(parts, kind), _losses(whole, kind), atol=1e-6)
    a = torch.load(whole / f"{kind}.pt", weights_only=True)
    b = torch.load(parts / f"{kind}.pt", weights_only=True)
    assert b["step"] == 8
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, atol=1e-6, rtol=0)


def _torchrun(args: list[str], nproc: int) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "engine.modeling.train",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_adversarial_decoder_fine_tune_resumes_exactly(tokenizer_run, photos, tmp_path):
    """--decoder-only --adv-weight --fft-weight: the encoder and codebook stay put,
    the discriminator trains and its term reaches the decoder from --adv-start on, and a
    stopped run resumes the discriminator too (same losses as one run)."""
    flags = [
        "tokenizer",
        "--data",
        str(photos),
        "--init",
        str(tokenizer_run / "tokenizer.pt"),
        "--decoder-only",
        "--adv-weight",
        "0.5",
        "--adv-start",
        "4",
        "--fft-weight",
        "1.0",
        "--disc-ch",
        "16",
        "--disc-layers",
        "2",
        *TINY_TOKENIZER,
    ]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main([*flags, "--out", str(whole), "--steps", "6"]) == 0
    rows = [json.loads(line) for line in (whole / "log_tokenizer.jsonl").read_text().splitlines()]
    steps = {r["step"]: r for r in rows if "loss" in r}
    assert sorted(steps) == list(range(6))
    assert all(steps[s]["adv_weight"] == 0 for s in (0, 1, 2, 3))
    assert all(steps[s]["adv_weight"] > 0 for s in (4, 5))
    assert all(0 < steps[s]["d_loss"] < 2 and steps[s]["fft"] > 0 for s in steps)
    evals = [r["eval"] for r in rows if "eval" in r]
    assert len(evals) == 2
    assert 0 < evals[-1]["val_hf_kept"] < 2
    # evaluated at step 4 (no adversarial term yet) and 6: the best is the one trained with it
    assert torch.load(whole / "tokenizer_best.pt", weights_only=True)["step"] == 6

    before = torch.load(tokenizer_run / "tokenizer.pt", weights_only=True)["model"]
    after = torch.load(whole / "tokenizer.pt", weights_only=True)
    assert "disc" in after["task_state"]
    assert "disc_opt" in after["task_state"]
    for key, value in before.items():
        if key.startswith(("encoder.", "quantize.")):
            torch.testing.assert_close(after["model"][key], value, atol=0, rtol=0)
    assert any(
        not torch.equal(after["model"][k], v) for k, v in before.items() if k.startswith("decoder.")
    )

    assert train.main([*flags, "--out", str(parts), "--steps", "6", "--stop-after", "3"]) == 0
    assert train.main([*flags, "--out", str(parts), "--steps", "6", "--resume"]) == 0
    np.testing.assert_allclose(_losses(parts, "tokenizer"), _losses(whole, "tokenizer"), atol=1e-5)
    resumed = torch.load(parts / "tokenizer.pt", weights_only=True)
    for key, value in after["task_state"]["disc"].items():
        torch.testing.assert_close(resumed["task_state"]["disc"][key], value, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_mage_trains_on_painted_holes_and_reports_them(tokenizer_run, photos, tmp_path):
    """--user-masks 1: every step masks painted holes; the held-out metrics gain the
    painted-hole loss and accuracy, and a resumed run replays the same masks."""
    flags = [
        "mage",
        "--data",
        str(photos),
        "--tokenizer",
        str(tokenizer_run / "tokenizer.pt"),
        "--user-masks",
        "1.0",
        *TINY_MAGE,
    ]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main([*flags, "--out", str(whole), "--steps", "6"]) == 0
    ckpt = torch.load(whole / "mage.pt", weights_only=True)
    assert ckpt["train_args"]["user_masks"] == 1.0
    m = ckpt["metrics"]
    assert m["val_painted_loss"] > 0
    assert 0 <= m["val_painted_acc"] <= 1
    assert m["val_painted_loss"] != m["val_loss"]
    assert train.main([*flags, "--out", str(parts), "--steps", "6", "--stop-after", "3"]) == 0
    assert train.main([*flags, "--out", str(parts), "--steps", "6", "--resume"]) == 0
    np.testing.assert_allclose(_losses(parts, "mage"), _losses(whole, "mage"), atol=1e-6)
    # painted steps are not random-mask steps: the loss curve differs from --user-masks 0
    plain = tmp_path / "plain"
    no_paint = [f for f in flags if f not in ("--user-masks", "1.0")]
    assert train.main([*no_paint, "--out", str(plain), "--steps", "6"]) == 0
    assert not np.allclose(_losses(plain, "mage"), _losses(whole, "mage"))


def test_best_tokenizer_with_the_adversarial_term_is_one_trained_with_it():
    from types import SimpleNamespace

    def task(last_step, adv=True):
        args = SimpleNamespace(adv_start=4)
        return SimpleNamespace(disc=object() if adv else None, args=args, last_step=last_step)

    better = TokenizerTask.better
    blurry_best = {"val_psnr": 22.0, "step": 4}  # trained steps 0-3: no adversarial term
    sharp = {"val_psnr": 21.5}
    assert better(task(5), sharp, blurry_best)  # lower PSNR, but with the term
    assert not better(task(5, adv=False), sharp, blurry_best)  # plain PSNR without it
    assert not better(task(2), {"val_psnr": 23.0}, {"val_psnr": 21.0, "step": 6})
    assert better(task(7), {"val_psnr": 21.6}, {"val_psnr": 21.5, "step": 6})
    assert not better(task(7), {"val_psnr": 21.4}, {"val_psnr": 21.5, "step": 6})
    assert better(task(1), {"val_psnr": 5.0}, None)


def test_a_discriminator_larger_than_the_images_is_refused(photos, tmp_path):
    base = ["tokenizer", "--data", str(photos), "--steps", "1", *TINY_TOKENIZER]
    # 32 px images: a 4-layer discriminator needs 62 px
    adv = ["--adv-weight", "0.1", "--disc-layers", "4"]
    assert train.main([*base, *adv, "--out", str(tmp_path / "a")]) == 2
    assert not (tmp_path / "a" / "tokenizer.pt").exists()
    assert train.main([*base, *adv[:2], "--out", str(tmp_path / "b")]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tokenizer", "mage"])
def test_torchrun_two_processes_match_one(kind, tokenizer_run, photos, tmp_path):
    """Same global batch: same per-step losses (dropout off: it is the one per-rank draw)."""
    if kind == "tokenizer":
        flags = ["tokenizer", "--data", str(photos), "--steps", "6", *TINY_TOKENIZER]
    else:
        flags = [
            "mage",
            "--data",
            str(photos),
            "--tokenizer",
            str(tokenizer_run / "tokenizer.pt"),
            "--steps",
            "6",
            "--dropout",
            "0",
            *TINY_MAGE,
        ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun rank runs: same kernels, same rounding
    try:
        assert train.main([*flags, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    _torchrun([*flags, "--out", str(tmp_path / "two")], nproc=2)
    one, two = _losses(tmp_path / "one", kind), _losses(tmp_path / "two", kind)
    assert len(one) == len(two) == 6
    np.testing.assert_allclose(two, one, atol=1e-4)


@pytest.mark.slow
def test_export_trained_checkpoints_loads_in_onnxruntime(tokenizer_run, mage_run, tmp_path):
    from engine.runtime.bundle import Bundle

    credits = tmp_path / "CREDITS.md"
    credits.write_text("# Credits\n- `sky/1.png` <- `synthetic`: CC0-1.0\n")
    notes = tmp_path / "notes.md"
    notes.write_text("## Speed\n\nfast enough\n")
    bundle_dir = tmp_path / "bundle"
    assert (
        train.main(
            [
                "export",
                "--tokenizer",
                str(tokenizer_run / "tokenizer_best.pt"),
                "--mage",
                str(mage_run / "mage.pt"),
                "-o",
                str(bundle_dir),
                "--name",
                "tiny-test",
                "--credits",
                str(credits),
                "--notes",
                str(notes),
            ]
        )
        == 0
    )
    bundle = Bundle(bundle_dir, device="cpu")
    m = bundle.manifest
    assert m.class_names == ["sea", "sky"]
    assert m.null_class_id == 2
    assert m.grid == [8, 8]
    tokens = bundle.encode(np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32))
    assert tokens.shape == (1, 8, 8)
    image = bundle.decode(tokens)
    assert image.shape == (1, 3, 32, 32)
    assert image.min() >= 0
    assert image.max() <= 1
    seq = tokens.reshape(1, -1).copy()
    seq[:, :32] = m.mask_token_id
    logits = bundle.logits(seq, np.array([1]))
    assert logits.shape == (1, 64, 64)
    assert np.isfinite(logits).all()
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "Training data" in card
    assert "val_psnr" in card
    assert "CC0-1.0 1" in card
    assert card.rstrip().endswith("fast enough")
    assert (bundle_dir / "CREDITS.md").read_text() == credits.read_text()
    assert (
        train.main(
            [
                "export",
                "--tokenizer",
                str(mage_run / "mage.pt"),
                "--mage",
                str(mage_run / "mage.pt"),
                "-o",
                str(tmp_path / "x"),
                "--name",
                "bad",
            ]
        )
        == 2
    )  # a mage checkpoint is not a tokenizer


TINY_BUNDLE_TOKENIZER = [
    "--image-size",
    "64",
    "--ch",
    "32",
    "--ch-mult",
    "1,1,2",
    "--z-channels",
    "32",
    "--codebook-size",
    "64",
    "--codebook-dim",
    "8",
    "--batch",
    "4",
    "--warmup",
    "1",
    "--lr",
    "1e-3",
    "--log-seconds",
    "0",
]


@pytest.mark.slow
def test_decoder_fine_tune_from_a_bundle_keeps_its_tokens(
    tiny_bundle_path, photos, tmp_path, caplog
):
    """`train tokenizer --init BUNDLE --decoder-only` then `train export --from-bundle`; the
    source bundle's classifier head (heads/NAME.npz, a file in a sub-folder) is kept, and the
    copy's manifest lists and verifies it."""
    import logging
    import shutil

    from engine.modeling.from_bundle import tokenizer_from_bundle
    from engine.runtime.bundle import Bundle
    from engine.runtime.manifest import read_manifest, sha256_file, write_manifest

    src = tmp_path / "src"
    shutil.copytree(tiny_bundle_path, src)
    (src / "heads").mkdir()
    np.savez(src / "heads" / "photos.npz", w=np.ones((2, 3), np.float32))
    manifest = read_manifest(src)
    manifest.files = {**manifest.files, "heads/photos.npz": ""}
    manifest.heads = {"photos": "heads/photos.npz"}
    write_manifest(src, manifest)

    before = tokenizer_from_bundle(tiny_bundle_path).state_dict()
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="engine.modeling"):
        assert (
            train.main(
                [
                    "tokenizer",
                    "--data",
                    str(photos),
                    "--out",
                    str(run),
                    "--steps",
                    "4",
                    "--init",
                    str(tiny_bundle_path),
                    "--decoder-only",
                    *TINY_BUNDLE_TOKENIZER,
                ]
            )
            == 0
        )
    assert any("ETA" in r.getMessage() and "loss" in r.getMessage() for r in caplog.records)
    after = torch.load(run / "tokenizer.pt", weights_only=True)
    assert after["train_args"]["decoder_only"] is True
    for key, value in before.items():
        if key.startswith(("encoder.", "quantize.")):
            torch.testing.assert_close(after["model"][key], value, atol=0, rtol=0)
    assert any(
        not torch.equal(after["model"][k], v) for k, v in before.items() if k.startswith("decoder.")
    )

    out = tmp_path / "tuned"
    assert (
        train.main(
            [
                "export",
                "--tokenizer",
                str(run / "tokenizer.pt"),
                "--from-bundle",
                str(src),
                "-o",
                str(out),
                "--name",
                "tiny-tuned",
            ]
        )
        == 0
    )
    bundle = Bundle(out, device="cpu")
    assert bundle.manifest.name == "tiny-tuned"
    assert bundle.manifest.class_names == ["cat", "dog", "boat"]
    for kept in ("transformer.onnx", "features.onnx"):
        assert sha256_file(out / kept) == sha256_file(tiny_bundle_path / kept)
    assert sha256_file(out / "tokenizer_decoder.onnx") != sha256_file(
        tiny_bundle_path / "tokenizer_decoder.onnx"
    )
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# tiny-tuned\n")
    assert "## Tokenizer replaced" in card
    assert "decoder_only True" in card
    copied = read_manifest(out)  # verifies every listed file's hash
    assert copied.heads == {"photos": "heads/photos.npz"}
    assert "heads/photos.npz" in copied.files
    assert sha256_file(out / "heads/photos.npz") == sha256_file(src / "heads/photos.npz")
    # same tokens as the original bundle, new pixels
    original = Bundle(tiny_bundle_path, device="cpu")
    images = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    np.testing.assert_array_equal(bundle.encode(images), original.encode(images))
    tokens = original.encode(images)
    assert not np.allclose(bundle.decode(tokens), original.decode(tokens))
    # and the tuned decoder is what the checkpoint says
    tuned = tokenizer_from_bundle(out)
    for key, value in after["model"].items():
        torch.testing.assert_close(tuned.state_dict()[key], value, atol=1e-6, rtol=0)


def test_replacing_a_tokenizer_refuses_one_with_other_tokens(tiny_bundle_path, tmp_path):
    from engine.modeling.export import ExportError, replace_tokenizer
    from engine.modeling.from_bundle import tokenizer_from_bundle

    model = tokenizer_from_bundle(tiny_bundle_path)
    with torch.no_grad():
        model.encoder.conv_out.weight.mul_(-1.0)  # another encoder: other codes
    with pytest.raises(ExportError, match="other tokens"):
        replace_tokenizer(model, tiny_bundle_path, tmp_path / "out", name="x")
    assert not (tmp_path / "out").exists()


def test_bundle_tokenizer_reads_back_exactly(tiny_bundle_path, tmp_path):
    import shutil

    from conftest import make_tiny_models
    from engine.modeling.from_bundle import BundleWeightsError, read_tokenizer_state
    from engine.runtime.manifest import read_manifest, write_manifest

    vqgan, _ = make_tiny_models()  # the tiny bundle was exported from exactly these weights
    cfg, state = read_tokenizer_state(tiny_bundle_path)
    assert cfg == vqgan.cfg
    for key, value in vqgan.state_dict().items():
        torch.testing.assert_close(state[key], value, atol=0, rtol=0)
    ckpt = load_checkpoint(tiny_bundle_path, "tokenizer")
    assert ckpt["kind"] == "tokenizer"
    assert ckpt["config"] == vqgan.cfg.to_dict()
    # a bundle whose "encoder" is some other network gives one clear error
    odd = tmp_path / "odd"
    shutil.copytree(tiny_bundle_path, odd)
    shutil.copyfile(odd / "features.onnx", odd / "tokenizer_encoder.onnx")
    write_manifest(odd, read_manifest(odd, verify_hashes=False))
    with pytest.raises(BundleWeightsError, match="not a tokenizer"):
        read_tokenizer_state(odd)
