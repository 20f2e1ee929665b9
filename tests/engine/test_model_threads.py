"""One bundle shared by parallel jobs (the editor runs several at once): the same results as
one after another, sessions opened once, one move to the CPU when CUDA fails in several."""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.runtime.bundle import Bundle
from engine.runtime.runs import Edit, plan_or_raise, run, run_to_end
from engine.runtime.settings import Settings
from engine.runtime.speed import EXACT, Speed

JOBS = 4


def _image(seed: int, size: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    rgb = [x * 4 % 256, y * 4 % 256, (x + y + 8 * seed) * 2 % 256]
    return np.stack(rgb, -1).astype(np.uint8)


def _job(bundle, seed: int, speed: Speed = EXACT):
    rgb = _image(seed)  # each job its own photo: the caches keep one entry per job
    mask = np.zeros(rgb.shape[:2], bool)
    a = 12 + 6 * (seed % 4)
    mask[a : a + 14, a : a + 14] = True
    settings = Settings(seeds=(seed,), steps=4, speed=speed)
    plan = plan_or_raise(bundle.manifest, rgb, mask, settings)
    result = run_to_end(run(bundle, Edit(rgb, plan), settings, preview_interval=0.0))
    return result.tokens.copy(), np.stack(result.images)


def _parallel(fn, seeds):
    start = threading.Barrier(len(seeds))

    def go(seed):
        start.wait(10)  # every job starts together
        return fn(seed)

    with ThreadPoolExecutor(len(seeds)) as pool:
        return list(pool.map(go, seeds))


def _same(a, b) -> None:
    assert len(a) == len(b)
    for (ta, ia), (tb, ib) in zip(a, b, strict=True):
        assert np.array_equal(ta, tb)
        assert np.array_equal(ia, ib)


def test_parallel_jobs_on_one_bundle_match_serial_runs(tiny_bundle):
    seeds = list(range(JOBS))
    serial = [_job(tiny_bundle, s) for s in seeds]
    _same(_parallel(lambda s: _job(tiny_bundle, s), seeds), serial)


def test_lazily_opened_sessions_and_caches_under_parallel_jobs(tiny_bundle_path):
    """The region decoders open on first use and the caches fill while jobs run together."""
    fast = Speed(region_decode=True, reuse_tokens=True)
    seeds = list(range(JOBS))
    alone = Bundle(tiny_bundle_path, device="cpu")
    serial = [_job(alone, s, fast) for s in seeds]
    shared = Bundle(tiny_bundle_path, device="cpu")
    _same(_parallel(lambda s: _job(shared, s, fast), seeds), serial)
    assert shared.caches.stats.misses == JOBS  # one full decode per square, none lost
    assert shared.caches.tokens.misses == JOBS


class _FailingCuda:
    """A session that says it runs on CUDA and fails, as a GPU that ran out of memory."""

    def __init__(self, real, failed: threading.Barrier):
        self.real, self.failed = real, failed

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self):
        return self.real.get_inputs()

    def get_outputs(self):
        return self.real.get_outputs()

    def run(self, names, feeds):
        with contextlib.suppress(threading.BrokenBarrierError):
            self.failed.wait(10)  # all jobs fail together
        raise RuntimeError("CUDA failure 2: out of memory")


def test_cuda_failing_in_parallel_jobs_moves_the_bundle_to_the_cpu_once(
    tiny_bundle, tiny_bundle_path
):
    seeds = list(range(JOBS))
    serial = [_job(tiny_bundle, s) for s in seeds]
    bundle = Bundle(tiny_bundle_path, device="cpu")
    bundle.requested_device = "auto"  # as opened on a machine with a GPU
    failed = threading.Barrier(JOBS)
    for name in list(bundle._sessions):
        bundle._sessions[name] = _FailingCuda(bundle._sessions[name], failed)
    _same(_parallel(lambda s: _job(bundle, s), seeds), serial)
    assert bundle.requested_device == "cpu"
    assert bundle.device == "cpu"
    assert sum("switched to the CPU" in n for n in bundle.notices) == 1
