"""onnxruntime sessions: provider choice, quiet CUDA fallback, CPU threading.

onnxruntime-gpu lists CUDA as "available" even with no GPU, and a failed CUDA load prints a wall
of errors. We only try CUDA when a driver library is present, silence the attempt, check what
the session really got, and turn any fallback into one notice.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
from functools import lru_cache

import onnxruntime as ort

from engine.runtime.devices import DEVICES
from engine.runtime.errors import BundleError
from engine.runtime.onnx_guard import check_onnx

log = logging.getLogger(__name__)
# onnxruntime logs its own (coloured) error line before raising; every failure is turned into
# one readable message here, so only fatal records are let through.
QUIET = 4
ort.set_default_logger_severity(QUIET)


@lru_cache(maxsize=1)
def cuda_driver_present() -> bool:
    """A cheap check for an NVIDIA driver, so machines without one never try CUDA."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return ctypes.util.find_library("cuda") is not None or os.path.exists("/dev/nvidia0")


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = max(1, os.cpu_count() or 1)
    # Spinning threads slow everything else in the process (GUI, a second session) 1.5-2x.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = QUIET
    return opts


def create_session(
    path: str | os.PathLike, device: str = "auto"
) -> tuple[ort.InferenceSession, str | None]:
    """Open one ONNX file. Returns (session, notice) where notice says why CUDA was not used."""
    if device not in DEVICES:
        raise BundleError(f"unknown device '{device}' (use one of {', '.join(DEVICES)})")
    check_onnx(path)  # a file that would allocate gigabytes while it opens is refused first
    want_cuda = device == "cuda" or (device == "auto" and cuda_driver_present())
    notice = None
    if want_cuda:
        ort.set_default_logger_severity(QUIET)  # the failed-load wall of errors is not for users
        sess = _open(path, ["CUDAExecutionProvider", "CPUExecutionProvider"])
        if "CUDAExecutionProvider" in sess.get_providers():
            return sess, None
        notice = (
            "CUDA is not usable here (GPU, driver or CUDA/cuDNN runtime missing): "
            "running on the CPU"
        )
        if device == "cuda":
            notice += "; install the 'cuda' extra for the CUDA runtime libraries"
        return sess, notice
    return _open(path, ["CPUExecutionProvider"]), notice


def _open(path, providers) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(), providers=providers)
    except Exception as e:  # onnxruntime raises several private exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BundleError(
            f"model file {os.path.basename(str(path))} cannot be loaded "
            f"(damaged or truncated?): {first[:200]}"
        ) from None


def provider_name(sess: ort.InferenceSession) -> str:
    return "cuda" if "CUDAExecutionProvider" in sess.get_providers() else "cpu"
