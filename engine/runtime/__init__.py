"""Shipped inference path: NumPy + onnxruntime only (never torch, onnx or Qt).

The public API, for the CLI, the app and scripts (names load on first use, so importing one
submodule stays cheap)::

    from engine.runtime import (Bundle, Edit, Settings, default_bundle_path, plan_edit,
                                run, run_to_end)

    bundle = Bundle(default_bundle_path())
    settings = Settings(seeds=(1, 2))
    plan = plan_edit(bundle.manifest, mask, settings)        # what the editor's grid shows
    result = run_to_end(run(bundle, Edit(rgb, plan), settings))
    patch = result.candidates[0].patch                       # crop-local: x0, y0, rgb

Modes: `Edit` (any number of parts; a class fill with settings.class_name), `Reroll`,
`Generate`, `Extend`. Recognition: `image_features`, `load_head`, `bundle_head`, `topk`,
`store_in_bundle`. Errors derive from `MageError` and carry a one-line reason.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Bundle": "bundle",
    "default_bundle_path": "locations",
    "Settings": "settings",
    "seeds_from": "settings",
    "EditPlan": "plan",
    "Part": "plan",
    "plan_edit": "plan",
    "Patch": "compose",
    "compose_squares": "compose",
    "paste_all": "compose",
    "Edit": "runs",
    "Reroll": "runs",
    "Generate": "runs",
    "Extend": "runs",
    "SIDES": "runs",
    "Step": "runs",
    "Candidate": "runs",
    "RunResult": "runs",
    "run": "runs",
    "run_to_end": "runs",
    "edit_image": "runs",
    "plan_or_raise": "runs",
    "step_image": "runs",
    "Head": "recognition",
    "image_features": "recognition",
    "load_head": "recognition",
    "bundle_head": "recognition",
    "store_in_bundle": "recognition",
    "topk": "recognition",
    "MageError": "errors",
    "ImageError": "errors",
    "MaskError": "errors",
    "BundleError": "errors",
    "OutputError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        # submodules (engine.runtime.runs) become attributes once imported
        raise AttributeError(f"module 'engine.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"engine.runtime.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
