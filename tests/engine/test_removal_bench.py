"""The held-out removal set, the removal metrics and the blind-sheet protocol (bench/)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import eval_removal as er
from bench import judge_sheets as js
from bench.removal_set import composite, load_cases


@pytest.fixture(scope="module")
def cases():
    return load_cases()


def test_set_has_enough_cases_of_every_kind(cases):
    kinds = [c.kind for c in cases]
    assert len(cases) >= 30
    assert {k: kinds.count(k) for k in ("box", "blob", "paste")} == {
        "box": 13,
        "blob": 13,
        "paste": 12,
    }
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert c.truth.shape[0] == c.truth.shape[1] in (256, 384)
        assert c.meta["source"]["licence"]
        if c.kind == "paste":
            assert c.meta["object"]["licence"]


def test_pasted_cases_differ_only_inside_the_mask(cases):
    for c in cases:
        same = np.all(c.input == c.truth, -1)
        assert same[~c.mask].all(), c.id
        if c.kind == "paste":
            # the cut-out covers most of its (slightly grown) mask
            assert (~same[c.mask]).mean() > 0.5, c.id
        else:
            assert same.all(), c.id
            assert c.mask.mean() == pytest.approx(0.15, abs=0.005), c.id


def test_composite_uses_alpha():
    truth = np.full((4, 4, 3), 100, np.uint8)
    obj = np.zeros((2, 2, 4), np.uint8)
    obj[..., 0] = 200
    obj[0, 0, 3], obj[0, 1, 3] = 255, 128
    out = composite(truth, obj, (1, 2))
    assert out[2, 1, 0] == 200
    assert out[2, 2, 0] == 150
    assert out[3, 1, 0] == 100
    assert (out[:2] == 100).all()


def test_missing_set_gives_a_one_line_reason(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_removal_set"):
        load_cases(tmp_path)


def test_changed_outside_counts_only_beyond_two_pixels():
    inp = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[10:20, 10:20] = True
    out = inp.copy()
    out[mask] = 255
    out[15, 21] = 7  # 2 px from the mask: allowed (feather band)
    assert er.changed_outside(inp, out, mask) == (0, 0)
    out[15, 24] = 9  # 5 px away
    out[0, 0, 2] = 3
    assert er.changed_outside(inp, out, mask) == (2, 9)


def test_off_colour_finds_a_blotch_and_not_a_plain_fill():
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(0, 6, (64, 64, 3)) + (60, 140, 60), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    plain = img.copy()
    plain[mask] = (60, 140, 60)
    assert er.off_colour(plain, mask, img) == 0.0
    blotch = plain.copy()
    blotch[24:36, 24:36] = (30, 30, 90)  # dark blue in a green field
    share = er.off_colour(blotch, mask, img)
    # the low-pass spreads the 12 px square by about sigma on each side
    assert 100 / mask.sum() < share <= 16**2 / mask.sum()


def test_zoom_box_stays_inside_and_covers_the_mask():
    mask = np.zeros((100, 120), bool)
    mask[80:100, 0:30] = True
    x0, y0, side = er.zoom_box(mask)
    assert x0 >= 0
    assert y0 >= 0
    assert x0 + side <= 120
    assert y0 + side <= 100
    assert x0 <= 0
    assert y0 <= 80
    assert x0 + side >= 30
    assert y0 + side >= 100


def test_sheets_are_shuffled_per_row_and_keyed(tmp_path, cases):
    few = cases[:3]
    methods = ["model", "patchmatch", "telea"]
    results = {
        (c.id, m): np.full_like(c.input, 50 * (i + 1)) for c in few for i, m in enumerate(methods)
    }
    paths = er.write_sheets(few, results, methods, tmp_path, rows_per=2, tile=64, seed=3)
    assert [p.name for p in paths] == ["sheet-1.png", "sheet-2.png"]
    key = json.loads((tmp_path / "sheets-key.json").read_text())
    assert [r["case"] for r in key["rows"].values()] == [c.id for c in few]
    for r in key["rows"].values():
        assert sorted(r["letters"]) == ["A", "B", "C"]
        assert sorted(r["letters"].values()) == sorted(methods)
    again = tmp_path / "again"
    again.mkdir()
    er.write_sheets(few, results, methods, again, rows_per=2, tile=64, seed=3)
    assert json.loads((again / "sheets-key.json").read_text()) == key


KEY = {
    "methods": {"model": "m", "texture": "t", "patchmatch": "p"},
    "rows": {
        "1": {"case": "a", "letters": {"A": "texture", "B": "model", "C": "patchmatch"}},
        "2": {"case": "b", "letters": {"A": "patchmatch", "B": "texture", "C": "model"}},
        "3": {"case": "c", "letters": {"A": "model", "B": "patchmatch", "C": "texture"}},
    },
}


def test_unblind_counts_kept_fills_ties_and_pairs():
    res = js.unblind(KEY, {"1": "A", "2": "A>B=C", "3": ["B", "C"]})
    assert res["judged"] == 3
    assert res["missing"] == []
    assert res["kept"] == {"model": 0.0, "texture": 1.5, "patchmatch": 1.5}
    # row 1: texture over both; row 2: patchmatch over both, texture = model; row 3: tie
    # between patchmatch and texture, both over model
    assert res["pairs"]["texture over model"] == [2.5, 3]
    assert res["pairs"]["texture over patchmatch"] == [1.5, 3]
    assert res["rows"][3]["kept"] == ["patchmatch", "texture"]


def test_unblind_leaves_out_missing_rows_and_refuses_bad_letters():
    res = js.unblind(KEY, {"2": "B"})
    assert res["missing"] == [1, 3]
    assert res["kept"]["texture"] == 1.0
    assert "model over patchmatch" not in res["pairs"]  # neither was ranked against the other
    with pytest.raises(ValueError, match="row 1: unknown letter 'D'"):
        js.unblind(KEY, {"1": "D"})
    with pytest.raises(ValueError, match="twice"):
        js.unblind(KEY, {"1": "A>A"})


def test_judge_cli(tmp_path, capsys):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY))
    picks = tmp_path / "picks.json"
    picks.write_text(json.dumps({"1": "A", "2": "B", "3": "C"}))
    assert js.main([str(picks), "--key", str(key)]) == 0
    out = capsys.readouterr().out
    assert "| t | 3 of 3 | 100% |" in out
    picks.write_text(json.dumps({"9": "A"}))
    assert js.main([str(picks), "--key", str(key)]) == 2


def test_doc_section_is_replaced_and_the_judgement_kept(tmp_path):
    doc = tmp_path / "q.md"
    doc.write_text("# Q\n\n## 3. X\ntext\n\n## What the numbers say\nsummary\n")
    er.update_doc(doc, "tables one")
    text = doc.read_text()
    assert text.index("## 4. Removal") < text.index("tables one") < text.index("## What the")
    assert "Not judged yet." in text
    assert text.endswith("summary\n")
    doc.write_text(text.replace("Not judged yet.", "my picks"))
    er.update_doc(doc, "tables two")
    text = doc.read_text()
    assert "tables two" in text
    assert "tables one" not in text
    assert "my picks" in text
    assert text.count("## 4. Removal") == 1
    assert text.endswith("summary\n")


def test_luma_bias_is_signed_and_only_inside_the_hole():
    truth = np.full((8, 8, 3), 100, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    out = truth.copy()
    out[mask] = 80
    out[7, 7] = 0  # outside the hole: not counted
    assert er.luma_bias(truth, out, mask) == pytest.approx(-20.0)
