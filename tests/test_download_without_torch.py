"""`download` end to end from a plain install: the official-format MaskGIT 256 pair of the
real sizes from the loopback server, imported by `main.py` in a child where PyTorch cannot be
imported, exact to the official vectors."""

from __future__ import annotations

import numpy as np
import pytest
from loopback import LoopbackServer

from conftest import FIXTURES
from engine.runtime import official_models as om
from engine.runtime.bundle import Bundle
from engine.runtime.downloads import ENV_BASE
from no_torch import run_main_without_torch


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_download_and_import_maskgit_without_torch(maskgit_pair, tmp_path, monkeypatch):
    model = om.find_model("maskgit-imagenet-256")
    models = tmp_path / "models"
    with LoopbackServer() as server:
        monkeypatch.setenv(ENV_BASE, server.url)
        for path, remote in zip(maskgit_pair, model.files.values(), strict=True):
            assert path.name == remote.name
            server.files["/" + remote.url.split("/", 3)[3]] = path
        run = run_main_without_torch(
            "download", model.name, "--yes", "--models-dir", models, timeout=1500
        )
    assert run.returncode == 0, run.stderr
    assert "[1/3] reading" in run.stdout
    assert "[3/3] checking the bundle" in run.stdout
    target = models / model.name
    assert run.stdout.strip().splitlines()[-1] == str(target)
    assert not om.downloads_dir(models, model).exists()
    size = sum(p.stat().st_size for p in target.iterdir())
    assert size < 1_000_000_000  # one copy of the weights
    bundle = Bundle(target, device="cpu")
    vectors = np.load(FIXTURES / "official_vectors" / "maskgit_seed4242.npz")
    seq = vectors["seq_tokens"].astype(np.int64)
    tokens = np.where(seq[:, 1:] < 0, bundle.manifest.mask_token_id, seq[:, 1:])
    logits = bundle.logits(tokens, seq[:, 0] - 1024)
    assert np.abs(logits - vectors["logits"][:, 1:]).max() <= 1e-3
