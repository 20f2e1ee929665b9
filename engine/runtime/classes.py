"""Class names people can find: the ImageNet-1k list and a search over names and synonyms.

`imagenet_classes()` reads the shipped `assets/imagenet_classes.json` (the 1000 classes in
class-index order with their WordNet synonyms). `find_class` resolves what a user typed (a class
number, a name, a synonym, free text, a close spelling) to one class or says in one line why it
cannot; `ClassIndex.search` ranks matches for a picker.
"""

from __future__ import annotations

import difflib
import json
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from engine.runtime import locations
from engine.runtime.errors import BundleError, MageError

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


# ---------------------------------------------------------------------------------------------
# Search

HOWS = ("exact", "number", "synonym", "words", "spelling", "part")
MAX_QUERY = 200  # characters of a query that are looked at
MAX_WORDS = 12  # words of a query that are looked at
SPELLING_CUTOFF = 0.84  # difflib ratio for a close spelling ("red car" is not "race car")
SHOWN = 5  # candidates named in an ambiguity or no-match message
# Words that say nothing about a class in free text ("a lighthouse at night").
STOPWORDS = frozenset(
    "a an the at in on of and or with by for to from into over under near some my our this "
    "that is are its it as".split()
)


@dataclass(frozen=True)
class ClassMatch:
    """One class found for a query: its index and display name, the text that matched (the
    name, a synonym, the number) and how: "exact" (the name), "number", "synonym" (one of the
    class's synonyms), "words" (words of the query match a synonym), "spelling" (a close
    spelling), or, from `ClassIndex.search` only, "part" (the query is the start or a part of a
    name or synonym, as while typing)."""

    index: int
    name: str
    matched: str
    how: str
    score: float = 0.0

    def describe(self) -> str:
        """e.g. "207 golden retriever (matched synonym 'golden retriever')"."""
        head = f"{self.index} {self.name}"
        if self.how == "exact":
            return head
        if self.how == "number":
            return f"{head} (class number {self.index})"
        if self.how == "spelling":
            return f"{head} (close spelling of '{self.matched}')"
        label = {"synonym": "synonym", "words": "words", "part": "text"}.get(self.how, self.how)
        return f"{head} (matched {label} '{self.matched}')"


def normalize(text: str) -> str:
    """Casefolded words of `text` separated by single spaces: accents dropped, punctuation and
    hyphens made spaces ("Man-Eater" -> "man eater")."""
    text = unicodedata.normalize("NFKD", text[:MAX_QUERY])
    out = [c if c.isalnum() else " " for c in text if not unicodedata.combining(c)]
    return " ".join("".join(out).casefold().split())


@dataclass(frozen=True)
class _Entry:
    index: int
    text: str  # as shown
    norm: str
    words: tuple[str, ...]
    is_name: bool


class ClassIndex:
    """Names and synonyms of one model's classes, prepared for `find` and `search`."""

    def __init__(self, names: Sequence[str], synonyms: Sequence[Sequence[str]] | None = None):
        self.names = [str(n) for n in names]
        entries: list[_Entry] = []
        for i, name in enumerate(self.names):
            texts = [name]
            texts += [str(s) for s in synonyms[i]] if synonyms and i < len(synonyms) else []
            texts += [t for t in name.split(",")[1:]]  # "tench, Tinca tinca" style names
            seen = set()
            for k, text in enumerate(texts):
                norm = normalize(text)
                if norm and norm not in seen:
                    seen.add(norm)
                    entries.append(_Entry(i, text.strip(), norm, tuple(norm.split()), k == 0))
        self.entries = entries
        self.by_norm: dict[str, list[_Entry]] = {}
        classes_of_word: dict[str, set[int]] = {}
        for e in entries:
            self.by_norm.setdefault(e.norm, []).append(e)
            for w in e.words:
                classes_of_word.setdefault(w, set()).add(e.index)
        n = max(len(self.names), 1)
        # rarer words say more: "retriever" (5 classes) outweighs "dog" (many)
        self.weight = {w: math.log(1 + n / len(c)) for w, c in classes_of_word.items()}
        self.vocabulary = sorted(classes_of_word)

    # -- the stages, strictest first ------------------------------------------------------------

    def _number(self, raw: str) -> ClassMatch | None:
        text = raw.strip().lstrip("#").strip()
        if not text.isdigit() or not text.isascii():
            return None
        if len(text) > 9 or int(text) >= len(self.names):
            raise MageError(
                f"class number {text[:12]} is out of range: this model has classes "
                f"0..{len(self.names) - 1}"
            )
        i = int(text)
        return ClassMatch(i, self.names[i], text, "number", 1000.0)

    def _same(self, q: str) -> list[ClassMatch]:
        """Classes whose name, else whose synonym, is the query."""
        hits = self.by_norm.get(q, [])
        named = [e for e in hits if e.is_name]
        chosen = named or hits
        how = "exact" if named else "synonym"
        return _best_per_class(
            [ClassMatch(e.index, self.names[e.index], e.text, how, 900.0) for e in chosen]
        )

    def _whole_words(self, words: Sequence[str]) -> list[ClassMatch]:
        """Classes with a name or synonym all of whose words are in the query; the most
        words matched first ("golden retriever puppy" -> golden retriever)."""
        have = set(words)
        found = []
        for e in self.entries:
            if set(e.words) <= have and not set(e.words) <= STOPWORDS:
                score = 500.0 + 10 * len(e.words) + (1 if e.is_name else 0)
                found.append(ClassMatch(e.index, self.names[e.index], e.text, "words", score))
        return _best_per_class(found)

    def _some_words(self, words: Sequence[str], typed: Sequence[str] = ()) -> list[ClassMatch]:
        """Classes sharing words with the query, weighted by how rare each word is; a match
        through a word not in `typed` (a respelled word) counts as a spelling."""
        wanted = [w for w in dict.fromkeys(words) if w not in STOPWORDS]
        own = set(typed or words)
        found = []
        for e in self.entries:
            common = [w for w in wanted if w in e.words]
            if common:
                weight = sum(self.weight.get(w, 0.0) for w in common)
                cover = len(common) / len(e.words)
                how = "words" if set(common) <= own else "spelling"
                found.append(
                    ClassMatch(e.index, self.names[e.index], e.text, how, 300 + weight + cover)
                )
        return _best_per_class(found)

    def _spelled(self, q: str) -> list[ClassMatch]:
        """Names and synonyms spelled close to the whole query."""
        found = []
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(q)
        for e in self.entries:
            matcher.set_seq1(e.norm)
            if (
                matcher.real_quick_ratio() >= SPELLING_CUTOFF
                and matcher.quick_ratio() >= SPELLING_CUTOFF
            ):
                ratio = matcher.ratio()
                if ratio >= SPELLING_CUTOFF:
                    found.append(
                        ClassMatch(
                            e.index, self.names[e.index], e.text, "spelling", 200 + 100 * ratio
                        )
                    )
        return _best_per_class(found)

    def _respelled(self, words: Sequence[str]) -> list[str]:
        """The query's words with unknown words of 4+ letters replaced by the closest word of
        a name or synonym ("lighthose" -> "lighthouse")."""
        out = []
        for w in words:
            if w in self.weight or len(w) < 4 or w in STOPWORDS:
                out.append(w)
                continue
            close = difflib.get_close_matches(w, self.vocabulary, n=1, cutoff=SPELLING_CUTOFF)
            out.append(close[0] if close else w)
        return out

    def _suggest(self, q: str) -> list[ClassMatch]:
        """Loosest: the nearest spellings, for a no-match message."""
        norms = list(self.by_norm)
        close = difflib.get_close_matches(q, norms, n=SHOWN * 3, cutoff=0.5)
        found = [
            ClassMatch(e.index, self.names[e.index], e.text, "spelling", 0.0)
            for c in close
            for e in self.by_norm[c][:1]
        ]
        return _best_per_class(found)

    # -- the two entry points -------------------------------------------------------------------

    def find(self, query: str) -> ClassMatch:
        """The one class `query` means, else MageError (one line) naming the best candidates."""
        raw = str(query)
        q = normalize(raw)
        if not q:
            raise MageError(
                "no class given: type a class number "
                f"(0..{len(self.names) - 1}), a name or a synonym"
            )
        shown = " ".join("".join(c if c.isprintable() else " " for c in raw[:60]).split())
        number = self._number(raw)
        if number:
            return number
        words = q.split()[:MAX_WORDS]
        respelled = self._respelled(words)
        stages = (
            lambda: self._same(q),
            lambda: self._whole_words(words),
            lambda: self._spelled(q),
            lambda: _as_spelling(self._whole_words(respelled)) if respelled != words else [],
            lambda: self._some_words(respelled, words),
        )
        for stage in stages:
            found = stage()
            if not found:
                continue
            top = [m for m in found if found[0].score - m.score < 1e-9]
            if len(top) == 1:
                return top[0]
            raise MageError(
                f"class '{shown}' is ambiguous: it could be {_listed(found)}; "
                "give the number or more of the name"
            )
        near = self._suggest(q)
        if near:
            hint = f"closest: {_listed(near)}"
        elif len(self.names) <= SHOWN * 4:
            hint = "classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(self.names))
        else:
            hint = f"give a class number 0..{len(self.names) - 1}, a name or a synonym"
        raise MageError(f"unknown class '{shown}' ({hint})")

    def search(self, query: str, limit: int | None = 50) -> list[ClassMatch]:
        """Classes ranked for a picker: the number, the name or a synonym, then names and
        synonyms starting with or holding the query (as while typing), then free-text words
        and close spellings. An empty query finds nothing (a picker then lists every class)."""
        raw = str(query)
        q = normalize(raw)
        if not q:
            return []
        found: list[ClassMatch] = []
        try:
            number = self._number(raw)
        except MageError:
            number = None
        if number:
            found.append(number)
        found += self._same(q)
        for e in self.entries:
            if e.norm.startswith(q):
                score = 700 + 50 * len(q) / len(e.norm) + (1 if e.is_name else 0)
            elif f" {q}" in f" {e.norm}":  # the start of one of its words
                score = 650 + 50 * len(q) / len(e.norm)
            elif len(q) >= 3 and q in e.norm:
                score = 600 + 50 * len(q) / len(e.norm)
            else:
                continue
            found.append(ClassMatch(e.index, self.names[e.index], e.text, "part", score))
        words = q.split()[:MAX_WORDS]
        respelled = self._respelled(words)
        found += self._whole_words(words)
        found += self._spelled(q)
        if respelled != words:
            found += _as_spelling(self._whole_words(respelled))
        found += self._some_words(respelled, words)
        ranked = _best_per_class(found)
        return ranked if limit is None else ranked[: max(limit, 0)]


def _best_per_class(found: list[ClassMatch]) -> list[ClassMatch]:
    """Each class once, with its best match; best first, then by class index."""
    best: dict[int, ClassMatch] = {}
    for m in found:
        if m.index not in best or m.score > best[m.index].score:
            best[m.index] = m
    return sorted(best.values(), key=lambda m: (-m.score, m.index))


def _as_spelling(found: list[ClassMatch]) -> list[ClassMatch]:
    return [ClassMatch(m.index, m.name, m.matched, "spelling", m.score - 400) for m in found]


def _listed(found: list[ClassMatch]) -> str:
    shown = ", ".join(f"{m.index} {m.name}" for m in found[:SHOWN])
    more = len(found) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


@lru_cache(maxsize=8)
def _index(names: tuple[str, ...], synonyms: tuple[tuple[str, ...], ...] | None) -> ClassIndex:
    return ClassIndex(names, synonyms)


def class_index(
    names: Sequence[str], synonyms: Sequence[Sequence[str]] | None = None
) -> ClassIndex:
    """A (cached) ClassIndex for these names and synonyms."""
    syn = tuple(tuple(str(w) for w in s) for s in synonyms) if synonyms else None
    return _index(tuple(str(n) for n in names), syn)


def find_class(
    query: str, names: Sequence[str], synonyms: Sequence[Sequence[str]] | None = None
) -> ClassMatch:
    """The class `query` names: a class number ("207"), a name or synonym (any case), free
    text whose words hold a synonym ("lighthouse at night"), or a close spelling. Ambiguous or
    unknown: MageError with one line naming the best few candidates."""
    if not names:
        raise MageError("this model has no classes")
    return class_index(names, synonyms).find(query)
