"""Class names people can find: the shipped ImageNet list and the class search."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.runtime import classes, locations
from engine.runtime.errors import MageError


def test_imagenet_list_is_the_standard_order_with_unique_names():
    names, synonyms = classes.imagenet_classes()
    assert len(names) == len(synonyms) == 1000
    assert names[0] == "tench"
    assert names[207] == "golden retriever"
    assert names[999] == "toilet tissue"
    assert len({n.casefold() for n in names}) == 1000  # unique, also ignoring case
    assert {names[134], names[517]} == {"crane (bird)", "crane (machine)"}
    assert {names[638], names[639]} == {"maillot (tights)", "maillot (swimsuit)"}
    assert names[264] == "Cardigan Welsh corgi"
    assert names[474] == "cardigan"
    assert "lighthouse" in synonyms[437]
    assert "beacon" in synonyms[437]
    assert all(s and all(w.strip() == w and w for w in s) for s in synonyms)
    data = json.loads((locations.ASSETS / classes.IMAGENET_FILE).read_text(encoding="utf-8"))
    wnids = [c["wnid"] for c in data["classes"]]
    assert wnids == sorted(wnids)
    assert wnids[207] == "n02099601"
    assert data["source"]["package"] == "timm"
    assert "Apache-2.0" in data["source"]["licence"]


def test_imagenet_lists_are_fresh_copies():
    names, synonyms = classes.imagenet_classes()
    names[0] = "changed"
    synonyms[0].append("changed")
    again, again_syn = classes.imagenet_classes()
    assert again[0] == "tench"
    assert "changed" not in again_syn[0]


# -- find_class ---------------------------------------------------------------------------------

IMAGENET = classes.imagenet_classes()


def find(query: str) -> classes.ClassMatch:
    return classes.find_class(query, *IMAGENET)


@pytest.mark.parametrize(
    ("query", "index", "how", "matched"),
    [
        ("207", 207, "number", "207"),
        ("  #207 ", 207, "number", "207"),
        ("golden retriever", 207, "exact", "golden retriever"),
        ("GOLDEN  Retriever", 207, "exact", "golden retriever"),
        ("lighthouse", 437, "synonym", "lighthouse"),
        ("man eater", 2, "synonym", "man-eater"),
        ("lighthouse at night", 437, "words", "lighthouse"),
        ("a golden retriever puppy on grass", 207, "words", "golden retriever"),
        ("crane bird", 134, "exact", "crane (bird)"),
        ("bird crane", 134, "words", "crane (bird)"),
        ("goldfsh", 1, "spelling", "goldfish"),
        ("golden retreiver", 207, "spelling", "golden retriever"),
        ("a lighthose at night", 437, "spelling", "lighthouse"),
        ("cardigan", 474, "exact", "cardigan"),
        ("Cardigan Welsh corgi", 264, "exact", "Cardigan Welsh corgi"),
    ],
)
def test_find_class_resolves_numbers_names_synonyms_words_and_spellings(query, index, how, matched):
    m = find(query)
    assert (m.index, m.how, m.matched) == (index, how, matched)
    assert m.name == IMAGENET[0][index]


def test_find_class_describes_the_match():
    assert find("golden retriever").describe() == "207 golden retriever"
    assert find("207").describe() == "207 golden retriever (class number 207)"
    assert find("lighthouse").describe() == "437 beacon (matched synonym 'lighthouse')"
    assert find("lighthouse at night").describe() == "437 beacon (matched words 'lighthouse')"
    assert find("goldfsh").describe() == "1 goldfish (close spelling of 'goldfish')"


@pytest.mark.parametrize(
    ("query", "message", "named"),
    [
        ("crane", "ambiguous", ["134 crane (bird)", "517 crane (machine)"]),
        ("panda", "ambiguous", ["387 lesser panda", "388 giant panda"]),
        ("retriever dog", "ambiguous", ["207 golden retriever", "208 Labrador retriever"]),
        ("1000", "out of range", ["0..999"]),
        ("99999999999999999999999", "out of range", ["0..999"]),
        ("", "no class given", ["0..999"]),
        ("xyzzy qwv", "unknown class 'xyzzy qwv'", []),
        ("xyzzy\nqwv\x00", "unknown class 'xyzzy qwv'", []),
        ("red car", "ambiguous", []),  # not "race car" by spelling: many classes hold "car"
    ],
)
def test_find_class_refuses_in_one_line_with_candidates(query, message, named):
    with pytest.raises(MageError) as e:
        find(query)
    text = str(e.value)
    assert "\n" not in text
    assert message in text
    for n in named:
        assert n in text


def test_find_class_with_names_only_and_comma_names():
    names = ["cat", "dog", "tench, Tinca tinca", "goldfish"]
    assert classes.find_class("1", names).name == "dog"
    assert classes.find_class("DOG", names).how == "exact"
    assert classes.find_class("tinca tinca", names).index == 2
    assert classes.find_class("a black cat", names).index == 0
    assert classes.find_class("goldfsh", names).index == 3
    with pytest.raises(MageError, match=r"0\.\.3"):
        classes.find_class("4", names)
    with pytest.raises(MageError, match=r"^unknown class 'zebra' \(classes: 0 cat, 1 dog, 2 t"):
        classes.find_class("zebra", names)
    with pytest.raises(MageError, match="no classes"):
        classes.find_class("cat", [])


# -- ClassIndex.search (the picker's search) -------------------------------------------------


def search(query: str, limit: int | None = 10) -> list[tuple[int, str]]:
    return [(m.index, m.how) for m in classes.class_index(*IMAGENET).search(query, limit)]


def test_search_ranks_what_is_being_typed():
    assert search("retr")[:5] == [(i, "part") for i in (207, 208, 205, 206, 209)]
    assert search("lighthou")[0] == (437, "part")
    assert search("lighthose")[0] == (437, "spelling")
    assert search("207")[0] == (207, "number")
    assert {i for i, _ in search("crane")[:2]} == {134, 517}
    assert search("") == []
    assert search("   ") == []
    assert len(search("a", limit=None)) > 10
    assert len(search("a", limit=3)) == 3
    first = classes.class_index(*IMAGENET).search("lighthou")[0]
    assert first.matched == "lighthouse"
    assert first.name == "beacon"


def test_search_is_fast_over_a_thousand_classes():
    classes.class_index(*IMAGENET).search("warm up")
    start = time.process_time()
    for q in ("g", "go", "gol", "gold", "golde", "golden", "golden r", "lighthose at nite"):
        classes.class_index(*IMAGENET).search(q)
    assert (time.process_time() - start) / 8 < 0.1  # CPU seconds a keystroke


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_find_and_search_never_crash(text):
    try:
        m = classes.find_class(text, *IMAGENET)
        assert 0 <= m.index < 1000
        assert m.how in classes.HOWS
    except MageError as e:
        assert str(e)
        assert str(e).isprintable()
    for m in classes.class_index(*IMAGENET).search(text, 5):
        assert 0 <= m.index < 1000
        assert m.how in classes.HOWS


def test_the_build_script_rebuilds_the_shipped_list(tmp_path):
    """scripts/make_imagenet_classes.py, fed a wheel holding the same two timm files (rebuilt
    here from the shipped list), writes the shipped file byte for byte; a display name that two
    classes would share is refused."""
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location(
        "make_imagenet_classes", locations.CHECKOUT / "scripts" / "make_imagenet_classes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = (locations.ASSETS / classes.IMAGENET_FILE).read_text(encoding="utf-8")
    rows = json.loads(shipped)["classes"]
    wheel = tmp_path / f"timm-{script.VERSION}-py3-none-any.whl"
    lemmas = [f"{c['wnid']}\t{', '.join(c['synonyms'])}" for c in rows]
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(script.SYNSETS_FILE, "\n".join(c["wnid"] for c in rows) + "\n")
        z.writestr(script.LEMMAS_FILE, "\n".join(["n00000001\tentity", *lemmas]) + "\n")
    assert script.render(script.build(wheel)) == shipped
    clash = [*lemmas]
    clash[1] = f"{rows[1]['wnid']}\ttench, goldfish"  # a second "tench"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(script.SYNSETS_FILE, "\n".join(c["wnid"] for c in rows) + "\n")
        z.writestr(script.LEMMAS_FILE, "\n".join(clash) + "\n")
    with pytest.raises(SystemExit, match="display name 'tench' of n01443537 repeats n01440764"):
        script.build(wheel)
