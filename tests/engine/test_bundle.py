"""Bundle loading, provider choice and CUDA fallback."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime import sessions
from engine.runtime.bundle import Bundle
from engine.runtime.errors import BundleError


def test_outputs_follow_the_contract(tiny_bundle):
    m = tiny_bundle.manifest
    images = np.random.default_rng(0).random((2, 3, m.image_size, m.image_size), np.float32)
    tokens = tiny_bundle.encode(images)
    assert tokens.shape == (2, *m.grid)
    assert tokens.dtype == np.int64
    assert tokens.min() >= 0
    assert tokens.max() < m.codebook_size
    pixels = tiny_bundle.decode(tokens)
    assert pixels.shape == images.shape
    assert pixels.min() >= 0
    assert pixels.max() <= 1
    seq = tokens.reshape(2, -1).copy()
    seq[:, ::3] = m.mask_token_id
    logits = tiny_bundle.logits(seq, np.array([0, m.null_class_id]))
    assert logits.shape == (2, m.seq_len, m.codebook_size)
    assert np.isfinite(logits).all()
    assert tiny_bundle.features(seq).shape == (2, m.features_dim)


def test_guidance_mixes_conditional_and_null_logits(tiny_bundle):
    m = tiny_bundle.manifest
    seq = np.full((1, m.seq_len), m.mask_token_id, np.int64)
    cond = tiny_bundle.logits(seq, np.array([1]))
    null = tiny_bundle.logits(seq)
    guided = tiny_bundle.tokens_to_logits(class_id=1, guidance=2.0)(seq)
    np.testing.assert_allclose(guided, null + 3.0 * (cond - null), rtol=1e-4, atol=1e-4)


def test_cuda_requested_without_gpu_falls_back_with_one_notice(tiny_bundle_path, monkeypatch):
    monkeypatch.setattr(sessions, "cuda_driver_present", lambda: False)
    bundle = Bundle(tiny_bundle_path, device="cuda")
    assert bundle.device == "cpu"
    assert len(bundle.notices) == 1
    assert "running on the CPU" in bundle.notices[0]
    auto = Bundle(tiny_bundle_path, device="auto")
    assert auto.device == "cpu"
    assert auto.notices == []


class FailingCudaSession:
    """Stands in for a CUDA session whose kernels fail at run time."""

    def __init__(self, real):
        self.real = real

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self):
        return self.real.get_inputs()

    def get_outputs(self):
        return self.real.get_outputs()

    def run(self, *args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_cuda_failing_at_run_time_switches_to_cpu(tiny_bundle_path, monkeypatch):
    real = sessions.create_session
    calls = []

    def fake_create(path, device="auto"):
        sess, _ = real(path, "cpu")
        calls.append(device)
        return (FailingCudaSession(sess) if device == "cuda" else sess), None

    monkeypatch.setattr("engine.runtime.bundle.create_session", fake_create)
    bundle = Bundle(tiny_bundle_path, device="cuda")
    m = bundle.manifest
    logits = bundle.logits(np.full((1, m.seq_len), m.mask_token_id, np.int64))
    assert logits.shape == (1, m.seq_len, m.codebook_size)
    assert bundle.device == "cpu"
    assert "switched to the CPU" in bundle.notices[-1]
    assert calls.count("cpu") >= 1


def test_unknown_device_and_missing_folder(tiny_bundle_path, tmp_path):
    with pytest.raises(BundleError, match="unknown device 'tpu'"):
        Bundle(tiny_bundle_path, device="tpu")
    with pytest.raises(BundleError, match="model folder not found"):
        Bundle(tmp_path / "nothing")
