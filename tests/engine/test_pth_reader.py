"""The restricted `torch.save` reader (engine/importing/torch_zip.py): state dicts come out as
NumPy arrays; hostile files are refused in one line and nothing in them runs.

The checkpoints here are assembled opcode by opcode, so these tests need no PyTorch; one test
compares with a real `torch.save` file where PyTorch is installed."""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.importing.errors import CheckpointError
from engine.importing.torch_zip import MAX_PICKLE_BYTES, read_pth, read_state_dict

# -- a minimal torch.save writer, opcode by opcode ----------------------------------------------


def _op(value) -> bytes:
    """A pickle fragment that pushes `value` (a str, int, float, bool or None)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(*parts: bytes) -> bytes:
    return b"(" + b"".join(parts) + b"t"


def _tensor(key: str, numel: int, size, stride, offset=0, kind="FloatStorage") -> bytes:
    pid = _tuple(_op("storage"), _global("torch", kind), _op(key), _op("cpu"), _op(numel))
    hooks = _global("collections", "OrderedDict") + b")R"
    args = _tuple(
        pid + b"Q",
        _op(offset),
        _tuple(*map(_op, size)),
        _tuple(*map(_op, stride)),
        _op(False),
        hooks,
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _dict(items: list[tuple[bytes, bytes]], ordered=False) -> bytes:
    head = _global("collections", "OrderedDict") + b")R" if ordered else b"}"
    return head + b"(" + b"".join(k + v for k, v in items) + b"u"


def _pickle(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _zip(path: Path, pkl: bytes, storages: dict[str, bytes], extra=()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
        for name, data, how in extra:
            z.writestr(name, data, compress_type=how)
    return path


A = np.arange(12, dtype="<f4").reshape(3, 4) / 7
B = np.arange(5, dtype="<i8")


def _good_body(wrap=True) -> bytes:
    sd = _dict(
        [
            (_op("a"), _tensor("0", 12, (3, 4), (4, 1))),
            (_op("a_t"), _tensor("0", 12, (4, 3), (1, 4))),
            (_op("b"), _tensor("1", 5, (5,), (1,), kind="LongStorage")),
        ],
        ordered=True,
    )
    if not wrap:
        return sd
    namespace = _global("argparse", "Namespace") + b")\x81" + _dict([(_op("lr"), _op(0.5))]) + b"b"
    return _dict([(_op("model"), sd), (_op("args"), namespace), (_op("epoch"), _op(3))])


def _good(path: Path, body: bytes | None = None) -> Path:
    return _zip(path, _pickle(body or _good_body()), {"0": A.tobytes(), "1": B.tobytes()})


# -- what a state dict needs is read ------------------------------------------------------------


def test_reads_a_state_dict_as_read_only_views(tmp_path):
    obj = read_pth(_good(tmp_path / "ok.pth"))
    assert isinstance(obj, dict)
    assert obj["epoch"] == 3
    assert obj["args"] == {"lr": 0.5}
    sd = read_state_dict(tmp_path / "ok.pth")
    assert list(sd) == ["a", "a_t", "b"]
    np.testing.assert_array_equal(sd["a"], A)
    np.testing.assert_array_equal(sd["a_t"], A.T)  # strides honoured
    np.testing.assert_array_equal(sd["b"], B)
    assert not sd["a"].flags.writeable


def test_agrees_with_torch_save(tmp_path):
    import torch  # the dev setup always has it

    sd = {
        "w": torch.randn(5, 7),
        "t": torch.randn(6, 4).t(),
        "slice": torch.randn(10, 3)[2:7],
        "p": torch.nn.Parameter(torch.randn(3)),
        "i": torch.arange(4),
        "h": torch.randn(2, 2).half(),
    }
    torch.save({"model": sd, "epoch": 1}, tmp_path / "real.pth")
    got = read_state_dict(tmp_path / "real.pth")
    for key, value in sd.items():
        np.testing.assert_array_equal(got[key], value.detach().numpy())


# -- hostile files: refused in one line, nothing runs -------------------------------------------


class _Payload:
    """Pickles to "call `func(*args)`", as a malicious checkpoint would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _refused(path: Path, match: str) -> str:
    with pytest.raises(CheckpointError, match=match) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 300
    return message


@pytest.mark.parametrize(
    "make",
    [
        lambda marker: _Payload(os.system, f"touch {marker}"),
        lambda marker: _Payload(eval, f"open({str(marker)!r}, 'w')"),
        lambda marker: _Payload(exec, f"open({str(marker)!r}, 'w')"),
        lambda marker: _Payload(Path.touch, Path(marker)),
    ],
    ids=["os.system", "builtins.eval", "builtins.exec", "pathlib.touch"],
)
@pytest.mark.parametrize("protocol", [0, 2])
def test_a_payload_is_refused_and_never_runs(tmp_path, make, protocol):
    marker = tmp_path / "ran"
    for where in ("top", "inside the state dict"):
        payload = pickle.dumps(make(marker), protocol=protocol)
        if where == "top":
            pkl = payload
        else:  # the payload as one value of an otherwise good state dict
            body = _dict([(_op("a"), _tensor("0", 12, (3, 4), (4, 1))), (_op("x"), payload[2:-1])])
            pkl = _pickle(_dict([(_op("model"), body)]))
            if protocol == 0:
                continue
        _refused(_zip(tmp_path / "evil.pth", pkl, {"0": A.tobytes()}), "which a state dict never")
        assert not marker.exists()


def test_reduce_of_something_not_callable_is_refused(tmp_path):
    # an allowed name (a storage class stand-in) used as a callable
    body = _global("torch", "FloatStorage") + _tuple(_op(1)) + b"R"
    _refused(_zip(tmp_path / "r.pth", _pickle(body), {}), "not a readable PyTorch checkpoint")


def test_a_namespace_with_a_payload_inside_is_refused(tmp_path):
    marker = tmp_path / "ran"
    inner = pickle.dumps(_Payload(os.system, f"touch {marker}"), protocol=2)[2:-1]
    ns = _global("argparse", "Namespace") + b")\x81" + _dict([(_op("cmd"), inner)]) + b"b"
    body = _dict([(_op("model"), _good_body(wrap=False)), (_op("args"), ns)])
    _refused(_good(tmp_path / "ns.pth", body), "posix.system|os.system")
    assert not marker.exists()


def test_storage_larger_than_its_member(tmp_path):
    body = _dict([(_op("a"), _tensor("0", 1000, (10, 100), (100, 1)))])
    _refused(_zip(tmp_path / "s.pth", _pickle(body), {"0": A.tobytes()}), "its member holds 48")


@pytest.mark.parametrize(
    ("size", "stride", "offset"),
    [
        ((2**62, 2**62), (1, 1), 0),  # the element count overflows any int64
        ((3, 4), (4, 1), 2**63),
        ((3, 5), (4, 1), 0),  # one element past the storage
        ((3, -4), (4, 1), 0),
    ],
)
def test_views_outside_their_storage(tmp_path, size, stride, offset):
    body = _dict([(_op("a"), _tensor("0", 12, size, stride, offset))])
    _refused(_zip(tmp_path / "v.pth", _pickle(body), {"0": A.tobytes()}), "refused")


def test_overflowing_storage_size(tmp_path):
    body = _dict([(_op("a"), _tensor("0", 2**64 + 1, (3, 4), (4, 1)))])
    _refused(_zip(tmp_path / "o.pth", _pickle(body), {"0": A.tobytes()}), "claims")


def test_zip_bomb_pickle(tmp_path):
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (MAX_PICKLE_BYTES + 1))
    assert bomb.stat().st_size < 1 << 20
    _refused(bomb, "far more than a state dict")


def test_compressed_storage(tmp_path):
    body = _dict([(_op("a"), _tensor("0", 12, (3, 4), (4, 1)))])
    path = tmp_path / "c.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _pickle(body))
        z.writestr("archive/data/0", A.tobytes(), compress_type=zipfile.ZIP_DEFLATED)
    _refused(path, "compressed")


def test_duplicate_member(tmp_path):
    path = _good(tmp_path / "d.pth")
    # zipfile warns; a hostile writer does not care
    with zipfile.ZipFile(path, "a") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("archive/data/0", np.zeros(12, "<f4").tobytes())
    _refused(path, "appears twice")


def test_missing_member(tmp_path):
    body = _dict([(_op("a"), _tensor("7", 12, (3, 4), (4, 1)))])
    _refused(_zip(tmp_path / "m.pth", _pickle(body), {"0": A.tobytes()}), "no member data/7")


def test_missing_pickle_and_not_a_zip(tmp_path):
    path = tmp_path / "n.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data/0", A.tobytes())
    _refused(path, "no data.pkl")
    (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"a": 1}))
    _refused(tmp_path / "legacy.pth", "not a readable PyTorch checkpoint \\(not a torch.save zip")
    (tmp_path / "empty.pth").write_bytes(b"")
    _refused(tmp_path / "empty.pth", "empty")


def test_truncated(tmp_path):
    data = _good(tmp_path / "ok.pth").read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        _refused(tmp_path / "cut.pth", "checkpoint")


def test_member_header_pointing_past_the_end(tmp_path):
    path = _good(tmp_path / "ok.pth")
    data = bytearray(path.read_bytes())
    # make the local header of data/0 claim a long extra field: its bytes would start late
    at = data.find(b"PK\x03\x04", data.find(b"archive/data/0") - 40)
    struct.pack_into("<H", data, at + 28, 0xFFFF)
    path.write_bytes(bytes(data))
    _refused(path, "reaches past the end of the file")


def test_symlink_and_fifo(tmp_path):
    good = _good(tmp_path / "ok.pth")
    (tmp_path / "link.pth").symlink_to(good)
    _refused(tmp_path / "link.pth", "symbolic link")
    os.mkfifo(tmp_path / "fifo.pth")
    _refused(tmp_path / "fifo.pth", "not a regular file")  # never blocks on open
    _refused(tmp_path / "absent.pth", "not found")


def test_no_state_dict(tmp_path):
    _refused(_good(tmp_path / "x.pth", _dict([(_op("model"), _op(3))])), "no state_dict")
    bad = _dict([(_op("a"), _op("text"))])
    _refused(_good(tmp_path / "y.pth", bad), "no state_dict")


# -- through the command line: one line, exit 2, nothing written, inputs untouched --------------


def _hostile_corpus(folder: Path) -> dict[str, Path]:
    marker = folder / "ran"
    evil = pickle.dumps(_Payload(os.system, f"touch {marker}"), protocol=2)
    files = {
        "os.system": _zip(folder / "system.pth", evil, {}),
        "builtins.eval": _zip(
            folder / "eval.pth", pickle.dumps(_Payload(eval, f"open({str(marker)!r}, 'w')")), {}
        ),
        "storage too large": _zip(
            folder / "large.pth",
            _pickle(_dict([(_op("a"), _tensor("0", 1000, (10, 100), (100, 1)))])),
            {"0": A.tobytes()},
        ),
        "overflow": _zip(
            folder / "overflow.pth",
            _pickle(_dict([(_op("a"), _tensor("0", 12, (2**62, 2**62), (1, 1)))])),
            {"0": A.tobytes()},
        ),
        "missing member": _zip(
            folder / "missing.pth",
            _pickle(_dict([(_op("a"), _tensor("7", 12, (3, 4), (4, 1)))])),
            {},
        ),
    }
    bomb = folder / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (MAX_PICKLE_BYTES + 1))
    files["zip bomb"] = bomb
    dup = _good(folder / "dup.pth")
    with zipfile.ZipFile(dup, "a") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("archive/data/0", A.tobytes())
    files["duplicate member"] = dup
    (folder / "link.pth").symlink_to(_good(folder / "target.pth"))
    files["symlink"] = folder / "link.pth"
    os.mkfifo(folder / "fifo.pth")
    files["fifo"] = folder / "fifo.pth"
    return files


def _snapshot(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[p.name] = "link -> " + os.readlink(p)
        elif p.is_file():
            out[p.name] = p.read_bytes()
        else:
            out[p.name] = "other"
    return out


def test_hostile_checkpoints_through_the_cli(tmp_path, capsys):
    from engine.cli import main as cli_main

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    corpus = _hostile_corpus(inputs)
    before = _snapshot(inputs)
    for case, path in corpus.items():
        out = tmp_path / "out"
        code = cli_main(["import-mage", str(path), "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 2, (case, err)
        assert len(err.strip().splitlines()) == 1, (case, err)
        assert "Traceback" not in err, (case, err)
        assert not out.exists(), case
        assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"], case  # no work folder
    assert _snapshot(inputs) == before  # inputs untouched, and no payload ran
    assert not (inputs / "ran").exists()


def test_a_payload_in_a_real_cli_process_without_torch(tmp_path):
    from no_torch import run_main_without_torch

    marker = tmp_path / "ran"
    evil = _zip(tmp_path / "evil.pth", pickle.dumps(_Payload(os.system, f"touch {marker}")), {})
    result = run_main_without_torch("import-mage", evil, "-o", tmp_path / "out", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: evil.pth is refused: it names posix.system, which a state dict never needs"
    )
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_training_args_with_paths_and_numpy_values_read_as_inert_data(tmp_path):
    """What a training script's `args` may hold (paths, NumPy values, dates) is read as
    nothing rather than refused, and never built."""
    import argparse
    import datetime

    args = argparse.Namespace(
        output_dir=Path("/tmp/run"),
        lr=np.float64(1.5e-4),
        mean=np.zeros(3),
        when=datetime.date.today(),
    )
    body = _dict(
        [(_op("model"), _good_body(wrap=False)), (_op("args"), pickle.dumps(args, 2)[2:-1])]
    )
    obj = read_pth(_good(tmp_path / "args.pth", body))
    assert isinstance(obj, dict)
    assert set(obj["args"]) == {"output_dir", "lr", "mean", "when"}
    assert not any(isinstance(v, (Path, np.ndarray, np.floating)) for v in obj["args"].values())
    assert list(read_state_dict(tmp_path / "args.pth")) == ["a", "a_t", "b"]
