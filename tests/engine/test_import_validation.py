"""Importers refuse what loading would refuse, before writing anything; NaN never passes a
check; a Flax file ends where its checkpoint ends."""

from __future__ import annotations

import math
from typing import Any, cast

import msgpack
import numpy as np
import pytest

from engine.importing.bundle import Steps, write_bundle
from engine.importing.errors import CheckpointError
from engine.importing.flax_msgpack import read_flax_checkpoint
from engine.importing.templates import Template
from engine.runtime.errors import BundleError
from engine.runtime.manifest import Manifest, check_manifest


def manifest(**changes) -> Manifest:
    fields: dict[str, Any] = dict(
        name="maskgit",
        image_size=256,
        grid=[16, 16],
        codebook_size=1024,
        mask_token_id=2024,
        class_names=["cat", "dog"],
        null_class_id=None,
        features_dim=768,
    )
    fields.update(changes)
    return Manifest(**fields)


def test_a_good_manifest_passes():
    check_manifest(manifest())


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"codebook_size": 70_000, "mask_token_id": 71_000}, "codebook_size' is 70000"),
        ({"name": "evil\x1b[2Jname"}, "not printable"),
        ({"name": "line\nbreak"}, "not printable"),
        ({"name": "x" * 5000}, "too long"),
        ({"mask_token_id": 5}, "is a real code id"),
        (
            {
                "grid": [128, 128],
                "image_size": 1024,
                "codebook_size": 60_000,
                "mask_token_id": 60_001,
            },
            "safety limit",
        ),
    ],
)
def test_what_loading_refuses_is_refused_before_writing(tmp_path, changes, why):
    bad = manifest(**changes)
    with pytest.raises(BundleError, match=why) as err:
        check_manifest(bad)
    assert "\n" not in str(err.value)
    # the bundle writer checks first: no folder, no file, no work done with the weights
    out = tmp_path / "models" / "maskgit"
    lines: list[str] = []
    with pytest.raises(BundleError, match=why):
        write_bundle(
            out,
            overwrite=False,
            inputs=[],
            tokenizer=(cast(Template, None), {}),  # never reached
            transformer=(cast(Template, None), {}),
            manifest=bad,
            card=lambda report: "",
            steps=Steps(lines.append, ["read", "write", "check"]),
        )
    assert not (tmp_path / "models").exists()
    assert lines == []


def test_the_parity_check_fails_on_nan():
    import torch  # the dev setup always has it  # the PyTorch export path (training's `export`)

    del torch
    from engine.modeling.export import ExportError, ParityReport, refuse_disagreement

    good = ParityReport(1.0, 1e-6, 1e-5, 1e-6, 1e-5)
    refuse_disagreement(good)
    for field in (
        "encoder_token_agreement",
        "decoder_max_abs",
        "logits_max_abs",
        "features_max_abs",
    ):
        report = ParityReport(**{**good.__dict__, field: math.nan})
        with pytest.raises(ExportError, match="disagree"):
            refuse_disagreement(report)


def _flax(path, extra: bytes = b"") -> None:
    a = np.ones((2, 3), np.float32)
    leaf = msgpack.ExtType(1, msgpack.packb([list(a.shape), "float32", a.tobytes()]))
    path.write_bytes(msgpack.packb({"params": {"a": {"kernel": leaf}}}) + extra)


@pytest.mark.parametrize(
    "extra",
    [
        b"\x92\x01",  # an array of two with one item: cut short
        b"\xc6\x00\x10\x00\x00ab",  # a bin that claims 1 MB and holds 2 bytes
        msgpack.packb({"params": {}})[:-1],  # a second checkpoint, cut short
        b"\x01",  # a whole object
    ],
)
def test_the_flax_reader_refuses_anything_after_the_checkpoint(tmp_path, extra):
    spec = {"params/a/kernel": (2, 3)}
    good = tmp_path / "good"
    _flax(good)
    assert read_flax_checkpoint(good, spec, "tokenizer")["params/a/kernel"].shape == (2, 3)
    bad = tmp_path / "bad"
    _flax(bad, extra)
    with pytest.raises(CheckpointError, match="data follows the checkpoint") as err:
        read_flax_checkpoint(bad, spec, "tokenizer")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("command", ["import-maskgit", "import-mage"])
@pytest.mark.parametrize("name", ["evil\x1b]0;title\x07", "two\nlines", "\u202etxt.exe"])
def test_a_name_loading_would_refuse_is_refused_before_reading(tmp_path, capsys, command, name):
    from engine.cli import main

    files = [tmp_path / "a.ckpt"] + ([tmp_path / "b.ckpt"] if command == "import-maskgit" else [])
    for f in files:
        f.write_bytes(b"never read")
    out = tmp_path / "out"
    code = main([command, *map(str, files), "-o", str(out), "--name", name])
    err = capsys.readouterr().err
    assert code == 2
    assert "model name" in err
    assert "not printable" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
