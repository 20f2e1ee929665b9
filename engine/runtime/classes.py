"""Class names people can find: the ImageNet-1k list and a search over names and synonyms.

`imagenet_classes()` reads the shipped `assets/imagenet_classes.json` (the 1000 classes in
class-index order with their WordNet synonyms). `find_class` resolves what a user typed (a class
number, a name, a synonym, free text, a close spelling) to one class or says in one line why it
cannot; `search_classes` ranks matches for a picker.
"""

from __future__ import annotations

import json
from functools import lru_cache

from engine.runtime import locations
from engine.runtime.errors import BundleError

IMAGENET_FILE = "imagenet_classes.json"


@lru_cache(maxsize=1)
def _imagenet() -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    path = locations.ASSETS / IMAGENET_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["classes"]
        names = tuple(str(c["name"]) for c in rows)
        synonyms = tuple(tuple(str(s) for s in c["synonyms"]) for c in rows)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"cannot read the ImageNet class list {path}: {e}") from None
    if len(names) != 1000 or [c.get("index") for c in rows] != list(range(1000)):
        raise BundleError(f"{path}: expected the 1000 ImageNet classes in index order")
    return names, synonyms


def imagenet_classes() -> tuple[list[str], list[list[str]]]:
    """The 1000 ImageNet-1k class display names (unique) and each class's synonyms, in
    class-index order (index 207 is "golden retriever"). Fresh lists on every call."""
    names, synonyms = _imagenet()
    return list(names), [list(s) for s in synonyms]
