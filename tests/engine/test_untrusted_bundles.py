"""Bundles and head files are untrusted input: every field checked, files confined to the
bundle, broken model outputs and hostile head files refused in one line, writes never
redirected by planted files."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import HOSTILE_MANIFESTS, damaged_bundle
from engine.runtime import manifest as manifest_mod
from engine.runtime.bundle import Bundle
from engine.runtime.errors import BundleError, MageError
from engine.runtime.manifest import read_manifest, write_manifest
from engine.runtime.recognition import Head, HeadError, load_head


@pytest.mark.parametrize("how", sorted(HOSTILE_MANIFESTS))
def test_hostile_manifests_are_refused_in_one_line(how, tiny_bundle_path, tmp_path):
    broken = damaged_bundle(tiny_bundle_path, tmp_path, how)
    with pytest.raises(BundleError) as refused:
        Bundle(broken, device="cpu")
    message = str(refused.value)
    assert HOSTILE_MANIFESTS[how] in message
    assert "\n" not in message
    assert "private" not in message  # nothing read from outside the bundle is shown


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = (
    "name",
    "image_size",
    "grid",
    "codebook_size",
    "mask_token_id",
    "class_names",
    "null_class_id",
    "class_synonyms",
    "decoding",
    "features_dim",
    "heads",
    "files",
    "format_version",
)


@pytest.fixture(scope="module")
def scratch_bundle(tiny_bundle_path, tmp_path_factory):
    return Path(shutil.copytree(tiny_bundle_path, tmp_path_factory.mktemp("fuzz") / "b"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=3))
def test_any_manifest_is_read_or_refused_with_bundle_error(
    changes, scratch_bundle, tiny_bundle_path
):
    """Property: whatever the fields hold, reading gives a manifest within the limits or a
    BundleError, never another exception."""
    data = json.loads((tiny_bundle_path / "manifest.json").read_text())
    data.update(changes)
    (scratch_bundle / "manifest.json").write_text(json.dumps(data))
    try:
        m = read_manifest(scratch_bundle, verify_hashes=False)
    except BundleError as e:
        assert "\n" not in str(e)
        return
    assert 8 <= m.image_size <= manifest_mod.MAX_IMAGE_SIZE
    assert m.image_size % m.grid[0] == 0
    assert m.grid[0] == m.grid[1]
    assert m.mask_token_id >= m.codebook_size
    assert m.seq_len * m.codebook_size <= manifest_mod.MAX_LOGITS_PER_IMAGE
    steps = m.decoding.get("steps", 12)
    assert isinstance(steps, int)
    assert 1 <= steps <= manifest_mod.MAX_STEPS
    for name in m.files:
        assert not name.startswith("/")
        assert ".." not in name.split("/")
    if m.class_names is not None and m.null_class_id is not None:
        assert m.null_class_id >= len(m.class_names)
    if m.class_synonyms is not None:
        assert m.class_names is not None
        assert len(m.class_synonyms) == len(m.class_names)


def test_a_well_formed_head_entry_is_accepted(tiny_bundle_path, tmp_path):
    own = Path(shutil.copytree(tiny_bundle_path, tmp_path / "own"))
    (own / "heads").mkdir()
    rng = np.random.default_rng(0)
    Head(
        "linear",
        ["a", "b"],
        rng.normal(size=(2, 32)).astype(np.float32),
        np.zeros(2, np.float32),
        np.zeros(32, np.float32),
        np.ones(32, np.float32),
    ).save(own / "heads" / "topics.npz")
    m = read_manifest(own)
    m.heads["topics"] = "heads/topics.npz"
    m.files["heads/topics.npz"] = ""
    write_manifest(own, m)
    assert Bundle(own, device="cpu").manifest.heads == {"topics": "heads/topics.npz"}


class BrokenOutputs:
    """A session whose outputs are wrong: NaN logits or a wrong shape."""

    def __init__(self, real, how):
        self.real, self.how = real, how

    def __getattr__(self, name):
        return getattr(self.real, name)

    def run(self, names, feeds):
        out = self.real.run(names, feeds)
        if self.how == "nan":
            out[0] = np.full_like(out[0], np.nan)
        elif self.how == "shape":
            out[0] = out[0][..., :-1]
        return out


@pytest.mark.parametrize(
    ("how", "expect"), [("nan", "NaN or infinite"), ("shape", "returned shape")]
)
def test_broken_model_outputs_give_one_line(how, expect, tiny_bundle_path):
    bundle = Bundle(tiny_bundle_path, device="cpu")
    m = bundle.manifest
    for name in ("transformer", "tokenizer_decoder"):
        bundle._sessions[name] = BrokenOutputs(bundle._sessions[name], how)
    with pytest.raises(BundleError, match=expect):
        bundle.logits(np.full((1, m.seq_len), m.mask_token_id, np.int64))
    with pytest.raises(BundleError, match=expect):
        bundle.decode(np.zeros((1, *m.grid), np.int64))


# -- head files ---------------------------------------------------------------------------------


def _head(**over) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "weight": rng.normal(size=(2, 4)).astype(np.float32),
        "bias": np.zeros(2, np.float32),
        "mean": np.zeros(4, np.float32),
        "std": np.ones(4, np.float32),
        "class_names": np.array(["a", "b"]),
        "meta": np.array(
            json.dumps({"format": "mage-head", "format_version": 1, "kind": "linear", "scale": 1.0})
        ),
    }
    arrays.update(over)
    return arrays


def _bomb(path: Path) -> None:
    """A few hundred KB that decompress to 320 MB: the .npy header claims (2, 40e6) float32."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (2, 40_000_000)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in _head().items():
            if key == "weight":
                with z.open("weight.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_1_0(member, header)
                    chunk = bytes(1 << 22)
                    for _ in range(80):
                        member.write(chunk)
            else:
                with z.open(f"{key}.npy", "w") as member:
                    np.lib.format.write_array(member, value)


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("empty", "the file is empty"),
        ("text", "not a classifier head"),
        ("scalar-mean", "do not fit together"),
        ("string-weight", "holds"),
        ("object-array", "holds object data"),
        ("nan", "NaN"),
        ("meta-list", "not a classifier head"),
        ("scale-string", "wrong kind"),
        ("bomb", "would take"),
        ("deep-meta", "nested too deeply"),
        ("folder", "not a regular"),
    ],
)
def test_hostile_head_files_are_refused(case, expect, tmp_path):
    path = tmp_path / "h.npz"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("not a zip")
    elif case == "scalar-mean":
        np.savez(path, **_head(mean=np.float32(0)))
    elif case == "string-weight":
        np.savez(path, **_head(weight=np.array([["a"] * 4] * 2)))
    elif case == "object-array":
        np.savez(path, **_head(bias=np.array([1, None], dtype=object)))
    elif case == "nan":
        np.savez(path, **_head(bias=np.array([np.nan, 0], np.float32)))
    elif case == "meta-list":
        np.savez(path, **_head(meta=np.array("[1, 2]")))
    elif case == "scale-string":
        np.savez(
            path,
            **_head(
                meta=np.array(json.dumps({"format": "mage-head", "kind": "linear", "scale": "big"}))
            ),
        )
    elif case == "bomb":
        _bomb(path)
    elif case == "deep-meta":
        np.savez(path, **_head(meta=np.array("[" * 100_000 + "]" * 100_000)))
    elif case == "folder":
        path.mkdir()
    with pytest.raises(HeadError) as refused:
        load_head(path)
    assert expect in str(refused.value)
    assert "\n" not in str(refused.value)


def test_head_save_never_follows_planted_files_and_keeps_permissions(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out.npz"
    for planted in (out.name + ".tmp.npz", out.name + ".tmp", "." + out.name + ".tmp"):
        (tmp_path / planted).symlink_to(victim)
    head = Head(
        "linear",
        ["a", "b"],
        np.ones((2, 3), np.float32),
        np.zeros(2, np.float32),
        np.zeros(3, np.float32),
        np.ones(3, np.float32),
    )
    head.save(out)
    assert victim.read_text() == "keep me"
    assert load_head(out).class_names == ["a", "b"]
    out.chmod(0o600)
    head.save(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == [
        "out.npz",
        "victim.txt",
    ]


def test_failed_writes_leave_no_temp_files(tmp_path, monkeypatch, tiny_bundle_path):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", fail)
    head = Head(
        "linear",
        ["a", "b"],
        np.ones((2, 3), np.float32),
        np.zeros(2, np.float32),
        np.zeros(3, np.float32),
        np.ones(3, np.float32),
    )
    with pytest.raises(MageError, match="No space left"):
        head.save(tmp_path / "h.npz")
    assert list(tmp_path.iterdir()) == []
    own = Path(shutil.copytree(tiny_bundle_path, tmp_path / "own"))
    before = sorted(os.listdir(own))
    (own / "manifest.json").chmod(0o640)
    monkeypatch.setattr(manifest_mod.Manifest, "to_json", lambda self: fail())
    with pytest.raises(OSError, match="No space left"):
        write_manifest(own, read_manifest(own))
    assert sorted(os.listdir(own)) == before
    monkeypatch.undo()
    write_manifest(own, read_manifest(own))
    assert stat.S_IMODE((own / "manifest.json").stat().st_mode) == 0o640
    assert sorted(os.listdir(own)) == before
    assert math.isfinite(read_manifest(own).decoding["choice_temperature"])


def test_too_many_class_names_and_synonyms_are_refused_in_one_line(tiny_bundle_path, tmp_path):
    """18,000 classes with 64 synonyms each would make every search of the class picker and
    of --class scan 1.2 million texts: the manifest caps names and synonyms together."""
    folder = Path(shutil.copytree(tiny_bundle_path, tmp_path / "b"))
    data = json.loads((folder / "manifest.json").read_text())
    n = 18_000
    data["class_names"] = [f"c{i}" for i in range(n)]
    data["class_synonyms"] = [[f"s{i}-{j}" for j in range(64)] for i in range(n)]
    data["null_class_id"] = n
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as refused:
        read_manifest(folder, verify_hashes=False)
    message = str(refused.value)
    assert "\n" not in message
    assert f"more than {manifest_mod.MAX_CLASS_TEXTS:,} names together" in message
    # within the cap: read
    data["class_synonyms"] = [[f"s{i}"] for i in range(n)]
    (folder / "manifest.json").write_text(json.dumps(data))
    names = read_manifest(folder, verify_hashes=False).class_names
    assert names is not None
    assert len(names) == n


# -- ONNX files that would allocate gigabytes while they open -------------------------------------


def _decoder_model(how: str):
    """A tokenizer decoder (tokens int64 [B,h,w] -> image float32 [B,3,H,W]) whose graph makes
    a huge tensor of a constant size in the way `how` says. Built with onnx (tests only)."""
    import onnx
    from onnx import TensorProto, helper

    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "h", "w"])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, "H", "W"])
    huge = [40_000, 40_000, 3]  # 4.8e9 float32: 17.9 GiB
    inits, nodes = [], []
    if how == "constant-of-shape":
        inits.append(helper.make_tensor("size", TensorProto.INT64, [3], huge))
        nodes.append(helper.make_node("ConstantOfShape", ["size"], ["image"]))
    elif how == "constant-node":  # the size in a Constant node's unnamed value
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                ["size"],
                value=helper.make_tensor("", TensorProto.INT64, [3], huge),
            )
        )
        nodes.append(helper.make_node("ConstantOfShape", ["size"], ["image"]))
    elif how == "tile":
        inits.append(helper.make_tensor("one", TensorProto.FLOAT, [1, 1, 1, 1], [0.0]))
        inits.append(helper.make_tensor("reps", TensorProto.INT64, [4], [1, 3, 50_000, 50_000]))
        nodes.append(helper.make_node("Tile", ["one", "reps"], ["image"]))
    elif how == "declared-initializer":  # dims say 6 GiB; no data
        big = TensorProto(name="weights", data_type=TensorProto.FLOAT, dims=[3, 1 << 29])
        inits.append(big)
        nodes.append(helper.make_node("Identity", ["weights"], ["image"]))
    elif how == "external-data":
        ext = helper.make_tensor("weights", TensorProto.FLOAT, [4], [0.0] * 4)
        ext.ClearField("float_data")
        ext.data_location = TensorProto.EXTERNAL
        ext.external_data.add(key="location", value="../../../etc/passwd")
        inits.append(ext)
        nodes.append(helper.make_node("Identity", ["weights"], ["image"]))
    elif how == "declared-output":
        image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 60_000, 60_000])
        inits.append(helper.make_tensor("size", TensorProto.INT64, [4], [1, 3, 8, 8]))
        nodes.append(helper.make_node("ConstantOfShape", ["size"], ["image"]))
    graph = helper.make_graph(nodes, "decoder", [tokens], [image], initializer=inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


HUGE_ONNX = {
    "constant-of-shape": "ConstantOfShape makes a tensor of 40000x40000x3",
    "constant-node": "ConstantOfShape makes a tensor of 40000x40000x3",
    "tile": "Tile makes a tensor of 1x3x50000x50000",
    "declared-initializer": "initializer 'weights' declares 6.0 GiB",
    "external-data": "initializer 'weights' keeps its data in another file",
    "declared-output": "output 'image' declares a shape of 40.2 GiB",
}


@pytest.mark.parametrize("how", sorted(HUGE_ONNX))
def test_a_decoder_that_would_allocate_gigabytes_is_refused_before_any_session(
    how, tiny_bundle_path, tmp_path, monkeypatch
):
    import onnx

    from engine.runtime import sessions

    folder = Path(shutil.copytree(tiny_bundle_path, tmp_path / "b"))
    onnx.save(_decoder_model(how), folder / "tokenizer_decoder.onnx")
    opened: list[str] = []
    real_open = sessions._open

    def counted_open(path, providers):
        opened.append(Path(path).name)
        return real_open(path, providers)

    monkeypatch.setattr(sessions, "_open", counted_open)
    with pytest.raises(BundleError) as refused:
        Bundle(folder, device="cpu", verify=False)
    message = str(refused.value)
    assert message.startswith("model file tokenizer_decoder.onnx is refused: ")
    assert HUGE_ONNX[how] in message
    assert "\n" not in message
    assert "tokenizer_decoder.onnx" not in opened  # refused before onnxruntime saw it


def test_the_onnx_check_passes_a_real_bundle(tiny_bundle_path):
    from engine.runtime.onnx_guard import check_onnx

    files = sorted(tiny_bundle_path.glob("*.onnx"))
    assert len(files) >= 4
    for path in files:
        check_onnx(path)  # no refusal


@pytest.mark.skipif(
    not hasattr(os, "mkfifo"), reason="no FIFOs on this OS (Windows); CI on Linux runs it"
)
def test_the_onnx_check_never_waits_on_a_fifo(tmp_path):
    from engine.runtime.onnx_guard import check_onnx

    os.mkfifo(tmp_path / "model.onnx")
    check_onnx(tmp_path / "model.onnx")  # returns at once; onnxruntime reports it


def _resize_bomb_decoder(computed_scales: bool = True):
    """A decoder whose sizes are all dynamic, so only running it shows what it does: one
    token becomes a 3 x 20000 x 20000 image (4.8 GB). With `computed_scales` its Resize scales
    come out of a node, so no file check can read them; without, they are a constant."""
    import onnx
    from onnx import TensorProto, helper

    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["B", "h", "w"])
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, "H", "W"])
    half = [0.5, 1.5, 10000, 10000] if computed_scales else [1, 3, 20000, 20000]
    inits = [
        helper.make_tensor("half" if computed_scales else "scales", TensorProto.FLOAT, [4], half),
        helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    doubled = [helper.make_node("Mul", ["half", "two"], ["scales"])] if computed_scales else []
    nodes = [
        *doubled,
        helper.make_node("Cast", ["tokens"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["f", "axes"], ["f4"]),
        helper.make_node("Resize", ["f4", "", "scales"], ["image"], mode="nearest"),
    ]
    graph = helper.make_graph(nodes, "decoder", [tokens], [image], initializer=inits)
    model = onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what this onnxruntime reads
    return model


def test_a_constant_resize_bomb_is_refused_before_any_session(tiny_bundle_path, tmp_path):
    import onnx

    from engine.runtime.bundle import Bundle

    folder = Path(shutil.copytree(tiny_bundle_path, tmp_path / "b"))
    onnx.save(_resize_bomb_decoder(computed_scales=False), folder / "tokenizer_decoder.onnx")
    with pytest.raises(BundleError, match="its Resize scales a tensor up by 1x3x20000x20000"):
        Bundle(folder, device="cpu", verify=False)


def test_a_decoder_that_blows_one_token_up_fails_its_capped_probe(tiny_bundle_path, tmp_path):
    import subprocess
    import sys

    import onnx

    folder = Path(shutil.copytree(tiny_bundle_path, tmp_path / "b"))
    onnx.save(_resize_bomb_decoder(), folder / "tokenizer_decoder.onnx")
    # in a child process, so that its peak memory is its own
    script = (
        "import sys\n"
        "from engine.runtime.bundle import Bundle\n"
        "from engine.runtime.errors import BundleError\n"
        "try:\n"
        "    Bundle(sys.argv[1], device='cpu', verify=False)\n"
        "except BundleError as e:\n"
        "    print('refused:', e)\n"
        # VmHWM is this program's own peak: ru_maxrss would also count the parent's memory
        # at the fork, which survives the exec
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print('peak MB', int(hwm.split()[1]) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused: "), done.stdout + done.stderr[-2000:]
    assert lines[0].endswith("tokenizer_decoder.onnx needs more than 1 GiB to decode one token"), (
        done.stdout + done.stderr[-2000:]
    )
    peak = int(lines[1].split()[-1])
    assert peak < 1500, peak  # the 4.8 GB image was never allocated


@pytest.mark.parametrize("field", ["class_names", "class_synonyms"])
def test_class_texts_with_bidi_or_control_characters_are_refused(field, tiny_bundle_path, tmp_path):
    folder = Path(shutil.copytree(tiny_bundle_path, tmp_path / "b"))
    data = json.loads((folder / "manifest.json").read_text())
    n = len(data["class_names"])
    hostile = "cat\u202egnp.exe"
    if field == "class_names":
        data["class_names"][0] = hostile
    else:
        data["class_synonyms"] = [[hostile]] + [[] for _ in range(n - 1)]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="non-empty printable texts"):
        read_manifest(folder, verify_hashes=False)
