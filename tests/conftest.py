"""Shared fixtures: what is costly is made once per session (a tiny real bundle, the real-size
MaskGIT checkpoint pair, a 108 MP photo); isolated user folders; the `gui` marker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # pytest-xdist runs a worker per core: PyTorch's OpenMP threads in one worker (and in the
    # child processes it starts) take only that worker's share of the cores, else the threads of
    # two workers spin against each other (on 2 cores: a fifth of the CPU time more, and the
    # tiny training runs several times slower)
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))

try:
    from hypothesis import settings as _hypothesis_settings

    # CI replays the same examples on every run (a landing must not hinge on a random draw);
    # a developer's runs keep exploring new ones.
    _hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is a dev extra
    pass

REPO = Path(__file__).resolve().parents[1]
# Official key lists and golden vectors, with their provenance (tests/fixtures/README.md).
FIXTURES = REPO / "tests" / "fixtures"
GUI_TESTS = REPO / "tests" / "gui"


# The costliest files (wall time on 2 cores, from --durations), costliest first: with the suite
# spread over workers a file at a time (pyproject's addopts), they start first, so no worker is
# left with one of them at the end while the others wait.
COSTLIEST_FILES = [
    "engine/test_maskgit_vectors.py",
    "engine/test_train.py",
    "engine/test_import_templates.py",
    "engine/test_official_import.py",
    "engine/test_official_vectors.py",
    "gui/test_robustness_app.py",
    "engine/test_recognition.py",
    "test_download_without_torch.py",
    "gui/test_official_import_gui.py",
    "test_cli_download.py",
    "test_offline.py",
    "gui/test_long_painting.py",
    "test_robustness_cli.py",
    "gui/test_first_run.py",
]


def pytest_collection_modifyitems(config, items):
    """Everything under tests/gui drives the Qt app (offscreen) and carries the `gui` marker.
    Under pytest-xdist the costliest files come first (a stable sort: each file keeps its
    order); a run in one process keeps the plain order."""
    for item in items:
        if item.path.is_relative_to(GUI_TESTS):
            item.add_marker(pytest.mark.gui)
    if hasattr(config, "workerinput"):
        rank = {REPO / "tests" / name: i for i, name in enumerate(COSTLIEST_FILES)}
        items.sort(key=lambda item: rank.get(item.path, len(rank)))


def make_tiny_models(num_classes: int = 3, seed: int = 0):
    """A random tokenizer + transformer small enough to export in seconds."""
    import torch

    from engine.modeling.config import MageConfig, VqganConfig
    from engine.modeling.mage import MAGE
    from engine.modeling.vqgan import VQGAN

    torch.manual_seed(seed)
    vq_cfg = VqganConfig(
        image_size=64,
        ch=32,
        ch_mult=(1, 1, 2),
        num_res_blocks=1,
        z_channels=32,
        codebook_size=64,
        codebook_dim=8,
    )
    mage_cfg = MageConfig(
        grid=16,
        codebook_size=64,
        num_class_slots=num_classes + 1,
        embed_dim=32,
        depth=2,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        fixed_class_slot=None,
        official_layout=False,
        image_size=64,
    )
    return VQGAN(vq_cfg).eval(), MAGE(mage_cfg).eval()


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder that `make` fills once per test run, for the costly session fixtures. Under
    pytest-xdist every worker runs the session fixtures; the workers share one folder here: the
    first one fills it while the others wait on its lock, then all read it."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    folder, made = root / name, root / f"{name}.made"
    with FileLock(str(root / f"{name}.lock")):
        if not made.exists():
            if folder.exists():  # a worker that failed part way left it
                shutil.rmtree(folder)
            folder.mkdir()
            make(folder)
            made.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_bundle_path(tmp_path_factory) -> Path:
    """A class-conditional 64 px bundle (16x16 grid, 64 codes, classes cat/dog/boat)."""
    from engine.modeling.export import export_bundle

    def make(folder: Path) -> None:
        vqgan, mage = make_tiny_models()
        export_bundle(
            vqgan,
            mage,
            folder / "tiny",
            name="tiny",
            source="random weights (tests)",
            class_names=["cat", "dog", "boat"],
            decoding={"steps": 8, "choice_temperature": 4.5},
        )

    return made_once(tmp_path_factory, "bundles", make) / "tiny"


@pytest.fixture(scope="session")
def maskgit_pair(tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic official-format MaskGIT 256 checkpoint pair (tokenizer, transformer): real
    sizes and format (~900 MB), made once per session by the fixture generator and checked
    against the SHA-256s stored with the golden vectors. Read-only: tests copy what they damage."""
    import numpy as np

    names = "tokenizer_imagenet256_checkpoint", "maskgit_imagenet256_checkpoint"

    def make(folder: Path) -> None:
        vectors = np.load(FIXTURES / "official_vectors" / "maskgit_seed4242.npz")
        script = FIXTURES / "official_vectors" / "maskgit_make_ckpt.py"
        made = subprocess.run(
            [sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=600
        )
        assert made.returncode == 0, made.stderr
        for name, key in zip(names, ("tokenizer", "transformer"), strict=True):
            assert f"{name}: " in made.stdout
            assert str(vectors[f"ckpt_sha256_{key}"]) in made.stdout
            (folder / name).chmod(0o444)

    folder = made_once(tmp_path_factory, "maskgit-ckpt", make)
    return folder / names[0], folder / names[1]


@pytest.fixture(scope="session")
def huge_png(tmp_path_factory) -> Path:
    """A 12000x9000 (108 MP) gradient PNG, 324 MB decoded: past Pillow's decompression-bomb
    warning, short of its refusal. Made by a child process, so the test runner never holds the
    pixels; tests must not write it (they check its digest)."""
    code = (
        "import sys; import numpy as np; from PIL import Image\n"
        "rgb = np.empty((9000, 12000, 3), np.uint8)\n"
        "rgb[..., 0] = np.linspace(0, 255, 12000, dtype=np.float32)[None, :]\n"
        "rgb[..., 1] = np.linspace(0, 255, 9000, dtype=np.float32)[:, None]\n"
        "rgb[..., 2] = 90\n"
        "Image.fromarray(rgb).save(sys.argv[1], compress_level=1)\n"
    )

    def make(folder: Path) -> None:
        command = [sys.executable, "-c", code, str(folder / "huge.png")]
        subprocess.run(command, check=True, timeout=300)

    return made_once(tmp_path_factory, "huge", make) / "huge.png"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundle_path):
    from engine.runtime.bundle import Bundle

    return Bundle(tiny_bundle_path, device="cpu")


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real user's data, settings or models."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
