"""Class names people can find: the shipped ImageNet list and the class search."""

from __future__ import annotations

import json

from engine.runtime import classes, locations


def test_imagenet_list_is_the_standard_order_with_unique_names():
    names, synonyms = classes.imagenet_classes()
    assert len(names) == len(synonyms) == 1000
    assert (
        names[0] == "tench" and names[207] == "golden retriever" and names[999] == "toilet tissue"
    )
    assert len({n.casefold() for n in names}) == 1000  # unique, also ignoring case
    assert {names[134], names[517]} == {"crane (bird)", "crane (machine)"}
    assert {names[638], names[639]} == {"maillot (tights)", "maillot (swimsuit)"}
    assert names[264] == "Cardigan Welsh corgi" and names[474] == "cardigan"
    assert "lighthouse" in synonyms[437] and "beacon" in synonyms[437]
    assert all(s and all(w.strip() == w and w for w in s) for s in synonyms)
    data = json.loads((locations.ASSETS / classes.IMAGENET_FILE).read_text(encoding="utf-8"))
    wnids = [c["wnid"] for c in data["classes"]]
    assert wnids == sorted(wnids) and wnids[207] == "n02099601"
    assert data["source"]["package"] == "timm" and "Apache-2.0" in data["source"]["licence"]


def test_imagenet_lists_are_fresh_copies():
    names, synonyms = classes.imagenet_classes()
    names[0] = "changed"
    synonyms[0].append("changed")
    again, again_syn = classes.imagenet_classes()
    assert again[0] == "tench" and "changed" not in again_syn[0]
