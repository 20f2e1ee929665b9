"""Running `main.py` as a plain install would, with PyTorch (and JAX/Flax) made unimportable.

`sys.modules[name] = None` makes every `import name` raise ImportError in the child, so a
command that succeeds this way provably never needed them, whatever the test venv has."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

BLOCKED = ("torch", "jax", "flax", "engine.modeling")
_CHILD = (
    "import runpy, sys\n"
    f"for name in {BLOCKED!r}: sys.modules[name] = None\n"
    f"sys.path.insert(0, {str(REPO)!r})\n"
    f"sys.argv = [{str(REPO / 'main.py')!r}] + sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_main_without_torch(*args, **kwargs) -> subprocess.CompletedProcess:
    """`python main.py ARGS` in a child where torch cannot be imported."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], **kwargs)
