"""onnxruntime sessions: provider choice, quiet CUDA fallback, CPU threading.

onnxruntime-gpu lists CUDA as "available" even with no GPU, and a failed CUDA load prints a wall
of errors. We only try CUDA when a driver library is present, silence the attempt, check what
the session really got, and turn any fallback into one notice.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import threading
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


# A probe run (one token through a decoder whose sizes are only known at run time) draws its
# memory from an arena capped here, so a model that blows one token up into gigabytes fails
# the allocation instead of taking the memory. A real decoder needs its weights and a few MB.
PROBE_MEMORY = 1 << 30
_probe_arena: list[bool] = []  # [registered?] once per process
_probe_lock = threading.Lock()


def probe_session(path: str | os.PathLike) -> ort.InferenceSession | None:
    """A CPU session of `path` whose allocations come from the capped probe arena (None when
    this onnxruntime cannot cap them: the caller then probes its own, uncapped session)."""
    with _probe_lock:
        if not _probe_arena:
            try:
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(PROBE_MEMORY, 1, -1, -1))
                _probe_arena.append(True)
            except Exception:  # noqa: BLE001 - an onnxruntime without shared arenas
                _probe_arena.append(False)
        if not _probe_arena[0]:
            return None
    opts = session_options()
    opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.enable_cpu_mem_arena = True
    try:
        return ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception:  # noqa: BLE001 - the real session already opened it; no probe then
        return None


def out_of_memory(error: BaseException) -> bool:
    """True for onnxruntime's refusal to allocate past an arena's cap."""
    text = str(error)
    return "Available memory of" in text or "Failed to allocate memory" in text


def provider_name(sess: ort.InferenceSession) -> str:
    return "cuda" if "CUDAExecutionProvider" in sess.get_providers() else "cpu"
