"""Import without PyTorch: time, peak memory and bundle size of `import-mage` (ViT-B) and
`import-maskgit` (256 px) on official-format checkpoints of the real sizes.

    python bench/import_speed.py [--work DIR] [--runs N] [--keep]

The checkpoints are the synthetic official-format files of the exactness tests
(tests/fixtures/official_vectors/make_ckpt.py and maskgit_make_ckpt.py; writing the .pth needs
PyTorch, importing it does not). Each import runs as `main.py` in a child process with torch
made unimportable (tests/no_torch.py), as from a plain install; its peak memory is the child's
maximum resident set size (which counts the memory-mapped checkpoint pages it touched). Prints
a Markdown table; the goals are ViT-B in at most 60 s on 2 cores, peak memory at most 1.5x the
checkpoint, and a MaskGIT 256 bundle of at most 1.0 GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "tests" / "fixtures" / "official_vectors"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from no_torch import _CHILD  # noqa: E402


def _make(script: str, out: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(VECTORS / script), str(out), *args], check=True)


def _child(argv: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS bytes, stdout) of `main.py ARGV` without torch, in a fresh
    process (getrusage of children covers only the ones waited for since the last call, so
    each run goes through its own launcher)."""
    launcher = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.monotonic() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(p.stdout, file=sys.stderr)\n"
        "print(p.returncode, wall, u.ru_utime + u.ru_stime, u.ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", launcher, sys.executable, "-c", _CHILD, *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    code, wall, cpu, rss_kb = proc.stdout.split()
    if code != "0":
        raise SystemExit(f"import failed: {proc.stderr.strip().splitlines()[-1:]}")
    return float(wall), float(cpu), int(rss_kb) * 1024, proc.stderr


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, help="folder for the checkpoints (default: a temp one)")
    ap.add_argument("--runs", type=int, default=1, help="imports of each model (best is kept)")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoints and bundles")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="import-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    vitb = work / "mage_vitb_seed777.pth"
    if not vitb.exists():
        _make("make_ckpt.py", vitb)
    pair = [work / "tokenizer_imagenet256_checkpoint", work / "maskgit_imagenet256_checkpoint"]
    if not all(p.exists() for p in pair):
        _make("maskgit_make_ckpt.py", work)
    rows = []
    for label, inputs, command in (
        ("MAGE ViT-B", [vitb], "import-mage"),
        ("MaskGIT 256", pair, "import-maskgit"),
    ):
        best: tuple[float, float, float, str] | None = None
        for _ in range(args.runs):
            out = work / f"bundle-{command}"
            shutil.rmtree(out, ignore_errors=True)
            result = _child([command, *map(str, inputs), "-o", str(out)])
            if best is None or result[0] < best[0]:
                best = result
        assert best is not None  # --runs >= 1
        wall, cpu, rss, _ = best
        size_in = sum(p.stat().st_size for p in inputs)
        rows.append((label, size_in, wall, cpu, rss, _size(work / f"bundle-{command}")))
    print(f"CPU cores: {os.cpu_count()}; Python {sys.version.split()[0]}; best of {args.runs}")
    print()
    print("| import | checkpoint | wall | CPU | peak memory | peak / checkpoint | bundle |")
    print("|---|---|---|---|---|---|---|")
    for label, size_in, wall, cpu, rss, size_out in rows:
        print(
            f"| {label} | {size_in / 1e9:.2f} GB | {wall:.0f} s | {cpu:.0f} s | "
            f"{rss / 1e9:.2f} GB | {rss / size_in:.2f}x | {size_out / 1e9:.2f} GB |"
        )
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
