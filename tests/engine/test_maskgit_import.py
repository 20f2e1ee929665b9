"""MaskGIT checkpoint reading: the expected trees against the reference key list (never derived
from our own modules alone), and one-line refusals of damaged, truncated and wrong files, in
the reader and through `main.py import-maskgit` (exit code 2, nothing written)."""

from __future__ import annotations

import subprocess
import sys

import msgpack
import numpy as np
import pytest

from conftest import FIXTURES
from engine.cli import main as cli_main
from engine.importing.flax_msgpack import read_flax_checkpoint
from engine.importing.maskgit_names import TransformerShape
from engine.modeling.config import VqganConfig
from engine.modeling.mage_checkpoint import CheckpointError
from engine.modeling.maskgit import MaskGitConfig
from engine.modeling.maskgit_checkpoint import tokenizer_spec, transformer_spec
from engine.modeling.vqgan import VQGAN

MAKE_CKPT = FIXTURES / "official_vectors" / "maskgit_make_ckpt.py"


def leaf(array: np.ndarray, dtype: str | None = None, extra: bytes = b"") -> msgpack.ExtType:
    """A Flax array record (ext type 1: [shape, dtype name, C-order bytes])."""
    a = np.ascontiguousarray(array)
    record = [list(a.shape), dtype or a.dtype.name, a.tobytes() + extra]
    return msgpack.ExtType(1, msgpack.packb(record, use_bin_type=True))


def flax_file(path, tree: dict) -> None:
    path.write_bytes(msgpack.packb(tree, use_bin_type=True))


def nested(flat: dict[str, object]) -> dict:
    root: dict = {}
    for key, value in flat.items():
        node = root
        *parents, name = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = value
    return root


SMALL_SPEC = {
    "params/a/kernel": (2, 3),
    "params/a/bias": (3,),
    "params/b/table": (None, 4),
}


def small_tree(**overrides) -> dict:
    flat = {
        "params/a/bias": leaf(np.zeros(3, np.float32)),
        "params/a/kernel": leaf(np.ones((2, 3), np.float32)),
        "params/b/table": leaf(np.arange(20, dtype=np.float32).reshape(5, 4)),
    }
    flat.update(overrides)
    return nested({k: v for k, v in flat.items() if v is not None})


def refused(path, spec=SMALL_SPEC, what="tokenizer") -> str:
    with pytest.raises(CheckpointError) as e:
        read_flax_checkpoint(path, spec, what)
    message = str(e.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


# -- the expected trees --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_keys(tmp_path_factory) -> dict[str, dict[str, tuple[int, ...]]]:
    """{file: {path: shape}} listed by the fixture script for the 256 and the 512 pair."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for size in (256, 512):
        tsv = tmp_path_factory.mktemp("keys") / f"keys{size}.tsv"
        done = subprocess.run(
            [sys.executable, str(MAKE_CKPT), "--dump-keys", str(tsv), "--image-size", str(size)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        for line in tsv.read_text().splitlines():
            file, path, dtype, shape = line.split("\t")
            assert dtype == "float32"
            out.setdefault(file, {})[path] = tuple(int(s) for s in shape.split(","))
    return out


def _matches(spec, reference) -> None:
    assert set(spec) == set(reference)
    for path, shape in spec.items():
        want = reference[path]
        assert len(shape) == len(want), path
        assert all(s is None or s == w for s, w in zip(shape, want, strict=True)), path


def test_tokenizer_tree_is_the_official_one(reference_keys):
    spec = tokenizer_spec(VQGAN(VqganConfig()))
    assert len(spec) == 168
    _matches(spec, reference_keys["tokenizer_imagenet256_checkpoint"])
    _matches(spec, reference_keys["tokenizer_imagenet512_checkpoint"])


def test_transformer_tree_is_the_official_one(reference_keys):
    base = MaskGitConfig()  # the model's widths are the official file's
    spec = transformer_spec(TransformerShape(base.hidden, base.layers, base.heads, base.mlp))
    assert len(spec) == 393
    _matches(spec, reference_keys["maskgit_imagenet256_checkpoint"])
    _matches(spec, reference_keys["maskgit_imagenet512_checkpoint"])
    assert reference_keys["maskgit_imagenet512_checkpoint"][
        "params/Embed_0/position_embeddings/embedding"
    ] == (1025, 768)


# -- the reader ----------------------------------------------------------------------------------


def test_a_good_file_reads_every_tensor_exactly(tmp_path):
    path = tmp_path / "good"
    flax_file(path, small_tree())
    out = read_flax_checkpoint(path, SMALL_SPEC, "tokenizer")
    assert set(out) == set(SMALL_SPEC)
    np.testing.assert_array_equal(out["params/b/table"], np.arange(20).reshape(5, 4))
    assert out["params/a/kernel"].dtype == np.float32


def test_other_top_level_collections_are_skipped(tmp_path):
    tree = small_tree()
    tree["opt_state"] = {"mu": leaf(np.zeros(7, np.float32))}
    path = tmp_path / "with-state"
    flax_file(path, tree)
    assert set(read_flax_checkpoint(path, SMALL_SPEC, "tokenizer")) == set(SMALL_SPEC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"params/a/kernel": leaf(np.ones((3, 2), np.float32))},
            "tensor 'params/a/kernel' has shape [3, 2], expected [2, 3]",
        ),
        (
            {"params/a/kernel": leaf(np.ones((2, 3), np.float16))},
            "tensor 'params/a/kernel' has dtype float16, expected float32",
        ),
        (
            {"params/a/kernel": leaf(np.ones((2, 3), np.float64))},
            "tensor 'params/a/kernel' has dtype float64, expected float32",
        ),
        (
            {"params/a/bias": leaf(np.zeros(3, np.float32), extra=b"\0\0\0\0")},
            "tensor 'params/a/bias' holds 16 bytes but its shape [3] of float32 needs 12",
        ),
        (
            {"params/a/bias": msgpack.ExtType(3, b"\x00")},
            "tensor 'params/a/bias' is a msgpack ext record of type 3",
        ),
        (
            {"params/a/bias": leaf(np.array([0, np.nan, 1], np.float32))},
            "tensor 'params/a/bias' contains NaN or infinite values",
        ),
        ({"params/a/bias": 5}, "tensor 'params/a/bias' is a int, not an array"),
        ({"params/a/bias": None}, "'params/a/bias' is missing"),
        ({"params/c/kernel": leaf(np.zeros(1, np.float32))}, "'params/c' is not part of"),
        ({"params/a/kernel": {"x": 1}}, "'params/a/kernel' is a dict, not an array"),
        ({"params/a": 3}, "'params/a' is not a map of modules"),
    ],
)
def test_damaged_tensors_are_named_in_one_line(tmp_path, change, message):
    path = tmp_path / "bad"
    flax_file(path, small_tree(**change))
    assert message in refused(path)


def test_a_damaged_array_record_is_refused(tmp_path):
    path = tmp_path / "bad-record"
    flax_file(path, small_tree(**{"params/a/bias": msgpack.ExtType(1, b"\xc1garbage")}))
    assert "tensor 'params/a/bias' has a damaged array record" in refused(path)


def test_truncated_files_name_where_they_end(tmp_path):
    good = tmp_path / "good"
    flax_file(good, small_tree())
    data = good.read_bytes()
    at = data.index(b"table")  # inside the last tensor's record
    for cut in (at + 40, len(data) - 1):
        path = tmp_path / f"cut{cut}"
        path.write_bytes(data[:cut])
        message = refused(path)
        assert "is truncated: the file ends inside params/b/table" in message, message


def test_not_msgpack_empty_and_trailing_data_are_refused(tmp_path):
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert "photo.png is not a Flax checkpoint (msgpack)" in refused(png)
    zipped = tmp_path / "model.pth"
    zipped.write_bytes(b"PK\x03\x04" + bytes(100))
    assert "model.pth is not a Flax checkpoint" in refused(zipped)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert "empty (tokenizer) is empty" in refused(empty)
    trailing = tmp_path / "trailing"
    flax_file(trailing, small_tree())
    trailing.write_bytes(trailing.read_bytes() + b"\x01")
    assert "data follows the checkpoint" in refused(trailing)
    assert "checkpoint not found" in refused(tmp_path / "nothing")


def test_swapped_files_are_explained(tmp_path):
    tokenizer = tmp_path / "tokenizer_imagenet256_checkpoint"
    flax_file(tokenizer, nested({"params/decoder/Conv_0/bias": leaf(np.zeros(9, np.float32))}))
    transformer = tmp_path / "maskgit_imagenet256_checkpoint"
    flax_file(
        transformer,
        nested({"params/Embed_0/embeddings_ln/bias": leaf(np.zeros(9, np.float32))}),
    )
    from engine.modeling.maskgit_checkpoint import build_maskgit

    with pytest.raises(CheckpointError, match="is a MaskGIT transformer checkpoint, not a"):
        build_maskgit(transformer, tokenizer)


# -- the command line ----------------------------------------------------------------------------


def _cli(capsys, *argv) -> tuple[int, str]:
    code = cli_main(["import-maskgit", *map(str, argv)])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("which", ["tokenizer", "transformer"])
def test_cli_refuses_bad_files_in_one_line_and_writes_nothing(tmp_path, capsys, which):
    tok, tr = tmp_path / "tok", tmp_path / "tr"
    flax_file(tok, nested({"params/decoder/Conv_0/bias": leaf(np.zeros(7, np.float32))}))
    tr.write_text("not a checkpoint\n")
    out = tmp_path / "out" / "bundle"
    args = (tok, tr) if which == "tokenizer" else (tr, tok)
    code, err = _cli(capsys, *args, "-o", out)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    if which == "tokenizer":
        assert "tensor 'params/decoder/Conv_0/bias' has shape [7], expected [512]" in err
    else:
        assert "tr is not a Flax checkpoint (msgpack)" in err
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_never_replaces_inputs_or_folders_that_are_not_bundles(tmp_path, capsys):
    inputs = tmp_path / "downloads"
    inputs.mkdir()
    tok, tr = inputs / "tok", inputs / "tr"
    flax_file(tok, small_tree())
    flax_file(tr, small_tree())
    code, err = _cli(capsys, tok, tr, "-o", inputs, "--overwrite")
    assert code == 2
    assert "holds the input" in err
    assert tok.read_bytes()
    assert tr.read_bytes()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    code, err = _cli(capsys, tok, tr, "-o", other)
    assert code == 2
    assert "exists and is not empty" in err
    code, err = _cli(capsys, tok, tr, "-o", other, "--overwrite")
    assert code == 2
    assert "not a model bundle" in err
    assert (other / "keep.jpg").read_bytes() == b"x"


def test_cli_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["import-maskgit", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "TOKENIZER" in text.upper()
    assert "--overwrite" in text
    assert "no licence" in text
