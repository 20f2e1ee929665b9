#!/usr/bin/env python3
"""Un-blind a judgement of the removal sheets (bench/eval_removal.py) and print the shares.

    python bench/judge_sheets.py PICKS.json [--key bench/out/removal/sheets-key.json]

Protocol: the judge looks at the sheet images only (never the key), and for every row writes
which fill a person would keep. PICKS.json maps the row number to one of

* a letter, ``"B"``: B is kept, the others are not ranked;
* a list of letters, ``["A", "C"]``: a tie, the row's point is split between them;
* a ranking, ``"B>A=D>C"``: best first, ``=`` for a tie; the first group is what is kept, and
  the ranking also gives pairwise preferences.

Fills an entry does not name rank below every named one and are not compared with each other
(so a single letter says "this one over each of the others").

Printed: per method, the rows where it is kept (ties split) and that share; for every pair of
methods, the share of ranked rows where the first is preferred (a tie counts half; rows where
the judge ranked neither against the other are left out). Rows missing from PICKS.json are
listed and left out of the shares.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_KEY = REPO / "bench" / "out" / "removal" / "sheets-key.json"


def parse_pick(value, letters: set[str]) -> list[list[str]]:
    """The judge's entry for a row as ranked groups of letters, best first."""
    if isinstance(value, list):
        groups = [[str(v).strip().upper() for v in value]]
    elif isinstance(value, str):
        groups = [
            [c.strip().upper() for c in part.split("=") if c.strip()] for part in value.split(">")
        ]
    else:
        raise ValueError(f"not a letter, a list or a ranking: {value!r}")
    seen = [c for g in groups for c in g]
    if not seen or any(not g for g in groups):
        raise ValueError(f"empty pick: {value!r}")
    bad = [c for c in seen if c not in letters]
    if bad:
        raise ValueError(f"unknown letter {bad[0]!r} (this row has {''.join(sorted(letters))})")
    if len(set(seen)) != len(seen):
        raise ValueError(f"a letter appears twice: {value!r}")
    return groups


def unblind(key: dict, picks: dict) -> dict:
    methods = list(key["methods"])
    kept = dict.fromkeys(methods, 0.0)
    pair_wins = {(a, b): 0.0 for a in methods for b in methods if a != b}
    pair_rows = {(a, b): 0 for a in methods for b in methods if a != b}
    judged, missing = 0, []
    per_row = {}
    for row, info in sorted(key["rows"].items(), key=lambda kv: int(kv[0])):
        if row not in picks:
            missing.append(int(row))
            continue
        letters = info["letters"]
        try:
            groups = parse_pick(picks[row], set(letters))
        except ValueError as e:
            raise ValueError(f"row {row}: {e}") from None
        judged += 1
        first = groups[0]
        for c in first:
            kept[letters[c]] += 1 / len(first)
        per_row[int(row)] = {
            "case": info["case"],
            "kept": [letters[c] for c in first],
        }
        rank = {letters[c]: i for i, g in enumerate(groups) for c in g}
        # fills the entry does not name rank below every named one, unordered among themselves
        for a, b in combinations(methods, 2):
            ra, rb = rank.get(a), rank.get(b)
            if ra is None and rb is None:
                continue
            ra = len(groups) if ra is None else ra
            rb = len(groups) if rb is None else rb
            for x, y, rx, ry in ((a, b, ra, rb), (b, a, rb, ra)):
                pair_rows[(x, y)] += 1
                pair_wins[(x, y)] += 1.0 if rx < ry else 0.5 if rx == ry else 0.0
    return {
        "methods": key["methods"],
        "judged": judged,
        "missing": missing,
        "kept": kept,
        "pairs": {
            f"{a} over {b}": [pair_wins[(a, b)], pair_rows[(a, b)]]
            for (a, b) in pair_wins
            if pair_rows[(a, b)]
        },
        "rows": per_row,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("picks", type=Path, help="JSON: row number -> letter, list or ranking")
    ap.add_argument("--key", type=Path, default=DEFAULT_KEY)
    ap.add_argument("--json", type=Path, help="also write the un-blinded result here")
    args = ap.parse_args(argv)
    try:
        key = json.loads(args.key.read_text(encoding="utf-8"))
        picks = {str(k): v for k, v in json.loads(args.picks.read_text(encoding="utf-8")).items()}
        res = unblind(key, picks)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not res["judged"]:
        print("error: the picks name none of the key's rows", file=sys.stderr)
        return 2
    n = res["judged"]
    print(f"{n} rows judged" + (f"; not judged: {res['missing']}" if res["missing"] else ""))
    print("| method | kept | share |\n|---|---|---|")
    for m, name in res["methods"].items():
        print(f"| {name} | {res['kept'][m]:g} of {n} | {100 * res['kept'][m] / n:.0f}% |")
    if res["pairs"]:
        print("\n| preferred | rows | share |\n|---|---|---|")
        for pair, (wins, rows) in res["pairs"].items():
            print(f"| {pair} | {wins:g} of {rows} | {100 * wins / rows:.0f}% |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
