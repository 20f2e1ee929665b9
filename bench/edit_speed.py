"""Edit / generation latency: the official way (PyTorch eager) vs our onnxruntime path.

    .venv/bin/python bench/edit_speed.py [--bundle /tmp/vitb_bundle --checkpoint /tmp/vitb777.pth]
        [--runs 5] [--small exported_models/NAME] [--write docs/performance.md]

(a) "torch": the official script's way: full-image tokenize, a full 257-token forward per step,
    full decode, all PyTorch eager (same weights, imported from the checkpoint).
(b) onnxruntime with a speed preset: "exact" (default settings), "int8" (only the int8
    transformer), "fast" (engine.runtime.speed.FAST), "fastcrop" (fast + crop_encode).

Every backend runs in its own long-lived worker process (torch and onnxruntime never share a
process); the orchestrator asks them in turn, one run at a time, so runs are interleaved.
Each run of "fast" does a cold edit (token cache empty) and a warm edit (same image, a different
mask), as an editor does after the first stroke. Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = 12


# -- the scenario ---------------------------------------------------------------------------


def test_image(size: int) -> np.ndarray:
    """A real photo (data/photos) cropped square and resized to `size`, else a smooth pattern."""
    from PIL import Image

    photos = sorted((REPO / "data" / "photos").glob("*/*.jpg"))
    if photos:
        im = Image.open(photos[len(photos) // 2]).convert("RGB")
        s = min(im.size)
        im = im.crop(
            (
                (im.width - s) // 2,
                (im.height - s) // 2,
                (im.width - s) // 2 + s,
                (im.height - s) // 2 + s,
            )
        )
        return np.asarray(im.resize((size, size), Image.Resampling.LANCZOS))
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([x, y, (x + y) / 2], -1) * 255).astype(np.uint8)


def edit_mask(size: int, grid: int, shift: int = 0) -> np.ndarray:
    """A painted square of 5x5 tokens: with the 1-token ring, 7x7 = 49 of 256 tokens (19%)."""
    cell = size // grid
    m = np.zeros((size, size), bool)
    a = (grid // 2 - 3 + shift) * cell + cell // 4
    m[a : a + 5 * cell - cell // 2, a : a + 5 * cell - cell // 2] = True
    return m


# -- workers --------------------------------------------------------------------------------


def torch_worker(args) -> None:
    import torch

    from engine.modeling.mage_checkpoint import build_official, read_checkpoint
    from engine.runtime.compose import feather_in
    from engine.runtime.decode import iterative_decode, last_step, make_rngs
    from engine.runtime.manifest import read_manifest
    from engine.runtime.runs import plan_or_raise, prepare_fill
    from engine.runtime.settings import Settings

    torch.set_num_threads(args.threads)
    manifest = read_manifest(args.bundle, verify_hashes=False)
    _, vq, mage = build_official(read_checkpoint(args.checkpoint))
    size, g = manifest.image_size, manifest.grid[0]
    rgb = test_image(size)

    def fn(tokens):
        with torch.no_grad():
            return mage(torch.from_numpy(tokens)).numpy()

    def to_u8(x):
        return (x.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)

    def run(task, seed):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            if task == "edit":
                part = plan_or_raise(manifest, rgb, edit_mask(size, g), Settings()).parts[0]
                fill = prepare_fill(manifest, rgb, part)
                tok = vq.encode(torch.from_numpy(fill.model_image[None]))[0].reshape(-1).numpy()
                tok[part.token_mask.reshape(-1)] = manifest.mask_token_id
                start = tok[None].copy()
            else:
                start = np.full((1, manifest.seq_len), manifest.mask_token_id, np.int64)
            t1 = time.perf_counter()
            last = last_step(
                iterative_decode(
                    start,
                    fn,
                    mask_token_id=manifest.mask_token_id,
                    steps=STEPS,
                    choice_temperature=4.5,
                    rngs=make_rngs([seed]),
                )
            )
            t2 = time.perf_counter()
            px = to_u8(vq.decode(torch.from_numpy(last.tokens.reshape(1, g, g))))
            if task == "edit":
                feather_in(part, fill.crop, px[0], None)
            t3 = time.perf_counter()
        masked = np.flatnonzero(start[0] == manifest.mask_token_id)
        return {
            "total": t3 - t0,
            "cpu": time.process_time() - c0,
            "encode": t1 - t0,
            "steps": t2 - t1,
            "decode": t3 - t2,
            "nsteps": STEPS,
            "tokens": last.tokens[0].tolist(),
            "masked": masked.tolist(),
        }

    serve(run)


def ort_worker(args) -> None:

    from engine.runtime import runs
    from engine.runtime import speed as sp
    from engine.runtime.bundle import Bundle
    from engine.runtime.compose import paste_all
    from engine.runtime.settings import Settings

    bundle = Bundle(args.bundle, device="cpu", verify=False)
    m = bundle.manifest
    size, g = m.image_size, m.grid[0]
    rgb = test_image(size)
    speed = preset_speed(args.preset)
    if speed.int8 and not sp.int8_available(bundle):
        raise SystemExit(
            f"no int8 transformer for {args.bundle}: run "
            f"`python -m engine.modeling.quantize {args.bundle}` first"
        )

    def timed_edit(mask, seed):
        settings = Settings(steps=STEPS, seeds=(seed,), speed=speed)
        counts: dict[str, float] = {}
        orig = {k: getattr(bundle, k) for k in ("encode", "decode", "logits")}

        def wrap(name, f):
            def g_(*a, **k):
                t = time.perf_counter()
                try:
                    return f(*a, **k)
                finally:
                    counts[name] = counts.get(name, 0.0) + time.perf_counter() - t
                    counts[name + "_n"] = counts.get(name + "_n", 0) + 1

            return g_

        for k, f in orig.items():
            setattr(bundle, k, wrap(k, f))
        region = {k: getattr(bundle, k) for k in ("decode_with_stats", "decode_with_given_stats")}
        for k, f in region.items():  # the region decoders count as decode time
            setattr(bundle, k, wrap("decode", f))
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            # no step previews: the official loop decodes once, at the end
            if mask is None:
                res = runs.run_to_end(
                    runs.run(bundle, runs.Generate(), settings, preview_interval=math.inf)
                )
            else:
                plan = runs.plan_or_raise(m, rgb, mask, settings)
                res = runs.run_to_end(
                    runs.run(bundle, runs.Edit(rgb, plan), settings, preview_interval=math.inf)
                )
                fill = res.fill
                assert fill is not None  # an edit fills
                job = fill
            total = time.perf_counter() - t0
            cpu = time.process_time() - c0
        finally:
            for k in (*orig, *region):
                delattr(bundle, k)
        out = {
            "total": total,
            "cpu": cpu,
            "encode": counts.get("encode", 0.0),
            "steps": counts.get("logits", 0.0),
            "decode": counts.get("decode", 0.0),
            "nsteps": counts.get("logits_n", 0),
            "tokens": res.tokens[0].tolist(),
            "masked": np.flatnonzero(
                (np.ones(m.grid, bool) if mask is None else job.token_mask).reshape(-1)
            ).tolist(),
        }
        if mask is not None and speed.region_decode:
            # pixel error of the region decode inside the composited area (not timed)
            full = runs.decode_images(bundle, res.tokens)
            exact_img = paste_all(rgb, [runs.compose_fill(bundle, job, full, settings)[0]])
            diff = np.abs(exact_img.astype(int) - res.images[0].astype(int))
            out["region_max"] = int(diff.max())
            out["region_mean_in_mask"] = float(
                diff[np.repeat(np.repeat(job.token_mask, size // g, 0), size // g, 1)].mean()
            )
            out["outside_identical"] = bool(
                np.array_equal(
                    res.images[0][
                        ~np.repeat(np.repeat(job.token_mask, size // g, 0), size // g, 1)
                    ],
                    rgb[~np.repeat(np.repeat(job.token_mask, size // g, 0), size // g, 1)],
                )
            )
        if mask is not None and speed.reuse_tokens:
            exact_tok = bundle.encode(job.model_image[None])[0].reshape(-1)
            known = ~job.token_mask.reshape(-1)
            assert job.tokens is not None  # encoded by the run
            out["reuse_agreement"] = float((exact_tok[known] == job.tokens[known]).mean())
        return out

    def run(task, seed):
        if task == "generate":
            return timed_edit(None, seed)
        if speed.reuse_tokens:
            bundle.caches.clear()
            cold = timed_edit(edit_mask(size, g), seed)
            warm = timed_edit(edit_mask(size, g, shift=1), seed)
            cold["warm"] = {k: v for k, v in warm.items() if k != "tokens"}
            return cold
        return timed_edit(edit_mask(size, g), seed)

    serve(run)


def serve(run) -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        print(json.dumps(run(cmd["task"], cmd["seed"])), flush=True)


# -- orchestrator ---------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert self.proc.stdin is not None  # piped above
        assert self.proc.stdout is not None
        self._to, self._from = self.proc.stdin, self.proc.stdout
        self._read()

    def _read(self) -> dict:
        while True:
            line = self._from.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} died")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, task: str, seed: int) -> dict:
        self._to.write(json.dumps({"task": task, "seed": seed}) + "\n")
        self._to.flush()
        return self._read()

    def close(self) -> None:
        try:
            self._to.write(json.dumps({"quit": True}) + "\n")
            self._to.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def machine() -> dict:
    model = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import onnxruntime

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "versions": versions,
    }


def med(values):
    return float(np.median(values)) if values else float("nan")


def preset_speed(name: str):
    from dataclasses import replace

    from engine.runtime.speed import Speed

    return {
        "exact": Speed(),
        "int8": Speed(int8=True),
        "fastcrop": replace(Speed.preset("fast"), crop_encode=True),
    }.get(name) or Speed.preset(name)


def usable_presets(bundle: str, presets: list[str], say=print) -> tuple[list[str], list[str]]:
    """The presets this bundle can run, and a one-line note for each one skipped (an int8
    preset without an int8 transformer)."""
    from types import SimpleNamespace

    from engine.runtime.manifest import read_manifest
    from engine.runtime.speed import find_int8

    handle = SimpleNamespace(path=Path(bundle), manifest=read_manifest(bundle, verify_hashes=False))
    keep, notes = [], []
    for name in presets:
        if preset_speed(name).int8 and find_int8(handle) is None:
            notes.append(
                f"{name}: skipped, no int8 transformer for {bundle} (make one with "
                f"`python -m engine.modeling.quantize {bundle}`)"
            )
            say(notes[-1])
            continue
        keep.append(name)
    return keep, notes


def bench(
    bundle: str,
    checkpoint: str | None,
    presets: list[str],
    runs: int,
    threads: int,
    tasks=("edit", "generate"),
    seed0: int = 0,
    say=print,
) -> dict:
    # Passive OpenMP waits: PyTorch's threads then use CPU time only for work, as
    # onnxruntime's (no spinning) do, so the CPU-time column compares the work done.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    presets, notes = usable_presets(bundle, presets, say)
    workers = {}
    if checkpoint:
        workers["torch"] = Worker(
            "torch",
            [
                "--worker",
                "torch",
                "--bundle",
                bundle,
                "--checkpoint",
                checkpoint,
                "--threads",
                str(threads),
            ],
            env,
        )
    for p in presets:
        workers[p] = Worker(p, ["--worker", "ort", "--bundle", bundle, "--preset", p], env)
    results: dict = {w: {t: [] for t in tasks} for w in workers}
    results["_notes"] = notes
    try:
        for w in workers.values():  # warm-up (first-run allocations, page cache)
            w.ask(tasks[0], seed0)
        for r in range(runs):
            for task in tasks:
                for name, w in workers.items():
                    time.sleep(1.0)  # let the previous process's threads go idle
                    load = os.getloadavg()[0]
                    res = w.ask(task, seed0 + r)
                    res["load"] = load
                    results[name][task].append(res)
                    say(
                        f"run {r + 1}/{runs} {task:8s} {name:6s} {res['total']:6.2f} s "
                        f"(CPU {res['cpu']:.2f} s) "
                        f"(encode {res['encode']:.2f}, {res['nsteps']} steps "
                        f"{res['steps']:.2f}, decode {res['decode']:.2f}; load {load:.1f})"
                        + (f"; warm {res['warm']['total']:.2f} s" if "warm" in res else "")
                    )
    finally:
        for w in workers.values():
            w.close()
    return results


def _agree(a: dict, b: dict) -> float:
    """Share of the generated (masked) positions where two runs of the same seed agree."""
    idx = np.array(a["masked"], dtype=np.int64)
    return float(np.mean(np.array(a["tokens"])[idx] == np.array(b["tokens"])[idx]))


def summarize(results: dict, base: str = "torch") -> list[dict]:
    rows = []
    for name, by_task in results.items():
        if name.startswith("_"):
            continue
        for task, runs in by_task.items():
            if not runs:
                continue
            row = {
                "backend": name,
                "task": task,
                "n": len(runs),
                "total": med([r["total"] for r in runs]),
                "cpu": med([r["cpu"] for r in runs]),
                "encode": med([r["encode"] for r in runs]),
                "steps": med([r["steps"] for r in runs]),
                "nsteps": runs[0]["nsteps"],
                "decode": med([r["decode"] for r in runs]),
            }
            if "warm" in runs[0]:
                row["warm_total"] = med([r["warm"]["total"] for r in runs])
                row["warm_cpu"] = med([r["warm"]["cpu"] for r in runs])
                row["warm_encode"] = med([r["warm"]["encode"] for r in runs])
                row["reuse_agreement"] = med([r["warm"].get("reuse_agreement", 1.0) for r in runs])
            if "region_max" in runs[0]:
                row["region_max"] = max(r["region_max"] for r in runs)
                row["region_mean_in_mask"] = med([r["region_mean_in_mask"] for r in runs])
                row["outside_identical"] = all(r["outside_identical"] for r in runs)
            if base in results and results[base][task] and name != base:
                row["speedup"] = med([r["total"] for r in results[base][task]]) / row["total"]
                row["speedup_cpu"] = med([r["cpu"] for r in results[base][task]]) / row["cpu"]
                if "warm_cpu" in row:
                    row["warm_speedup_cpu"] = (
                        med([r["cpu"] for r in results[base][task]]) / row["warm_cpu"]
                    )
                agree = [_agree(a, b) for a, b in zip(results[base][task], runs, strict=False)]
                row["agree_vs_torch"] = float(np.mean(agree))
            if "exact" in results and name != "exact" and results["exact"][task]:
                agree = [_agree(a, b) for a, b in zip(results["exact"][task], runs, strict=False)]
                row["agree_vs_exact"] = float(np.mean(agree))
            row["load"] = med([r["load"] for r in runs])
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| backend | task | runs | median total s | CPU s | encode s | steps s (n) | decode s | "
        "speed-up vs torch (wall / CPU) | warm edit s (CPU s, CPU speed-up) | "
        "tokens agree vs torch / exact |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        agree = " / ".join(
            f"{r[k]:.1%}" if k in r else "-" for k in ("agree_vs_torch", "agree_vs_exact")
        )
        lines.append(
            f"| {r['backend']} | {r['task']} | {r['n']} | {r['total']:.2f} | {r['cpu']:.2f} | "
            f"{r['encode']:.2f} | {r['steps']:.2f} ({r['nsteps']}) | {r['decode']:.2f} | "
            + (f"{r['speedup']:.2f}x / {r['speedup_cpu']:.2f}x | " if "speedup" in r else "- | ")
            + (f"{r['warm_total']:.2f} ({r['warm_cpu']:.2f} s" if "warm_total" in r else "-")
            + (f", {r['warm_speedup_cpu']:.2f}x)" if "warm_speedup_cpu" in r else "")
            + (")" if "warm_total" in r and "warm_speedup_cpu" not in r else "")
            + f" | {agree} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["torch", "ort"])
    ap.add_argument("--preset", default="exact")
    ap.add_argument("--bundle", default="/tmp/vitb_bundle")
    ap.add_argument("--checkpoint", default="/tmp/vitb777.pth")
    ap.add_argument("--presets", default="exact,int8,fast")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--small",
        default=None,
        help="also time this (default) bundle; 'auto' = exported_models/DEFAULT",
    )
    ap.add_argument("--json", default=None, help="write raw results here")
    ap.add_argument(
        "--write",
        default=None,
        help="replace the generated section of this markdown file (docs/performance.md)",
    )
    args = ap.parse_args(argv)
    if args.worker == "torch":
        return torch_worker(args)
    if args.worker == "ort":
        return ort_worker(args)

    info = machine()
    print(json.dumps(info))
    presets = [p for p in args.presets.split(",") if p]
    results = bench(args.bundle, args.checkpoint, presets, args.runs, args.threads)
    rows = summarize(results)
    print(table(rows))
    out = {"machine": info, "bundle": args.bundle, "rows": rows, "notes": results["_notes"]}
    small = args.small
    if small == "auto":
        default = REPO / "exported_models" / "DEFAULT"
        small = (
            str(REPO / "exported_models" / default.read_text().strip())
            if default.is_file()
            else None
        )
    if small:
        sres = bench(small, None, presets, args.runs, args.threads)
        out["small"] = {"bundle": small, "rows": summarize(sres), "notes": sres["_notes"]}
        print(table(out["small"]["rows"]))
    for row in rows + out.get("small", {}).get("rows", []):
        row.pop("tokens", None)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.write:
        write_markdown(Path(args.write), out, args)


BEGIN, END = "<!-- bench:edit_speed:begin -->", "<!-- bench:edit_speed:end -->"


def extras(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r["task"] != "edit":
            continue
        if "warm_total" in r:
            lines.append(
                f"- {r['backend']}: warm edit (same image, another mask) "
                f"{r['warm_total']:.2f} s (encode {r['warm_encode']:.2f} s); known "
                f"tokens equal to a full re-encode: {r['reuse_agreement']:.1%}"
            )
        if "region_max" in r:
            lines.append(
                f"- {r['backend']}: region decode vs full decode inside the pasted "
                f"area: max |d| {r['region_max']} / 255, "
                f"mean {r['region_mean_in_mask']:.2f}; "
                "pixels outside the grown mask identical to the input: "
                f"{r['outside_identical']}"
            )
        lines.append(
            f"- {r['backend']}: median 1-min load average during its runs {r['load']:.1f} (2 cores)"
        )
    return lines


def write_markdown(path: Path, out: dict, args) -> None:
    m = out["machine"]
    body = (
        [
            BEGIN,
            "",
            f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores; "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
            + ".",
            f"Command: `python bench/edit_speed.py --runs {args.runs}` (bundle `{out['bundle']}`)",
            "",
            table(out["rows"]),
            "",
        ]
        + extras(out["rows"])
        + [f"- {note}" for note in out.get("notes", [])]
    )
    if "small" in out:
        body += (
            [
                "",
                f"Default model `{out['small']['bundle']}`:",
                "",
                table(out["small"]["rows"]),
                "",
            ]
            + extras(out["small"]["rows"])
            + [f"- {note}" for note in out["small"].get("notes", [])]
        )
    body += ["", END]
    text = path.read_text() if path.is_file() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + "\n".join(body) + text[text.index(END) + len(END) :]
    else:
        text = text + "\n" + "\n".join(body) + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
