"""How the app is put together: each object emits only its own signals."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"


def _foreign_emits(source: str) -> list[str]:
    """`x.y.emit(...)` calls whose signal belongs to another object: anything but
    `self.signal.emit` (own signal) and `self.signals.signal.emit` (a worker's own holder)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "emit"
        ):
            continue
        signal = node.func.value
        owner = signal.value if isinstance(signal, ast.Attribute) else None
        if isinstance(owner, ast.Name) and owner.id == "self":
            continue
        if (
            isinstance(owner, ast.Attribute)
            and owner.attr == "signals"
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "self"
        ):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
    return found


def test_no_object_emits_another_objects_signals():
    offenders = {
        str(path.relative_to(APP)): emits
        for path in sorted(APP.rglob("*.py"))
        if (emits := _foreign_emits(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_check_finds_a_foreign_emit():
    assert _foreign_emits("def f(self):\n    self.editor.error.emit('x')\n") == [
        "line 2: self.editor.error.emit"
    ]
    assert _foreign_emits("def f(self):\n    self.error.emit('x')\n") == []
