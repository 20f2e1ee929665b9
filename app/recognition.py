"""Recognition, as the panel shows it but without widgets: "what is this?" for the current image,
and a few-shot classifier built from example images.

`Recognition` owns the model calls (features of the current image, of the examples, the
few-shot fit) and the reads of example thumbnails, all on one pool of its own: model calls take
turns on one lock, so a thumbnail never waits behind one. A new image, model or example set
supersedes the job of its kind, whose late result is dropped. The image's features are computed
only while the recognition is `active` (its panel on screen), not on every image change while
its tab is hidden. The few-shot classes and their example files are kept between sessions in
the preferences (`store`).
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QThreadPool, Signal

from app.controller import JobController
from engine.runtime.errors import MageError
from engine.runtime.imageio import load_image
from engine.runtime.locations import user_data_dir
from engine.runtime.recognition import (
    Head,
    bundle_head,
    find_images,
    fit_fewshot,
    image_features,
    leave_one_out_accuracy,
    load_head,
    topk,
)

TOP = 5
THUMB_SIDE = 96  # example thumbnails are read at most this large
FEWSHOT = "fewshot"
EXAMPLES_FOLDER = "fewshot-examples"
JOB_KINDS = ("image", "examples", "fit", "thumbs")
NEEDS_CLASSES = "Add two or more classes and drop a few example images of each."
_ids = itertools.count(1)


@dataclass
class Example:
    id: int
    source: Path | np.ndarray  # a file, or a uint8 [H,W,3] picture
    label: str
    file: str = ""  # where a copy of an in-memory example is kept between sessions


@dataclass(eq=False)
class FewShotClass:
    name: str
    examples: list[Example] = field(default_factory=list)


@dataclass(frozen=True)
class HeadEntry:
    key: str  # "bundle:<name>", "file:<path>" or FEWSHOT
    text: str

    @property
    def kind(self) -> str:
        return FEWSHOT if self.key == FEWSHOT else self.key.split(":", 1)[0]


class Recognition(QObject):
    predictions_changed = Signal(list)  # [(class name, probability)], best first
    status_changed = Signal(str)  # the line under the predictions ("" when there is none)
    heads_changed = Signal()  # the classifiers to choose from, or the chosen one, changed
    fewshot_changed = Signal()  # the few-shot head was rebuilt or cleared
    fewshot_status_changed = Signal(str)
    examples_changed = Signal()  # examples left their class (unreadable files)
    thumbnails_ready = Signal(object)  # dict: example id -> uint8 [h, w, 3], its own small picture

    def __init__(self, parent: QObject | None = None, store=None):
        """`store` (app.preferences.Preferences, or None): where the few-shot classes and their
        examples are kept between sessions."""
        super().__init__(parent)
        self._store = store
        self.bundle = None
        self.active = False
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(len(JOB_KINDS))  # a superseded call never blocks a new one
        self._model_lock = threading.Lock()  # one model call at a time
        self._jobs = {kind: JobController(self, self.pool) for kind in JOB_KINDS}
        for kind in ("image", "examples", "fit"):
            self._jobs[kind].failed.connect(partial(self._on_failed, kind))
        self._jobs["image"].finished.connect(self._on_image_features)
        self._jobs["examples"].finished.connect(self._on_examples)
        self._jobs["fit"].finished.connect(self._on_fit)
        self._jobs["thumbs"].finished.connect(self._on_thumbs)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_jobs)  # bound: dropped with this object
        self.predictions: list[tuple[str, float]] = []
        self.not_sure = False  # the top class is under the head's "not sure" threshold
        self.status = ""
        self.fewshot_head: Head | None = None
        self.fewshot_loo: float | None = None
        self.fewshot_status = NEEDS_CLASSES
        self.classes: list[FewShotClass] = []
        self.heads: list[HeadEntry] = []
        self.head_key: str | None = None
        self.thumbs: set[int] = set()  # examples whose own thumbnail has been delivered
        self._image_name = ""
        self._rgb: np.ndarray | None = None
        self._image_features: np.ndarray | None = None
        self._loaded: dict[str, Head] = {}
        self._features: dict[int, np.ndarray] = {}  # example id -> features
        self._note = ""  # appended to the next few-shot status (skipped files)
        self._restoring = False
        self._set_status("Open a model to recognise images.")

    # -- what the panel sets ---------------------------------------------------------------

    def set_active(self, active: bool) -> None:
        """Whether anyone looks: features are computed only while active."""
        if active == self.active:
            return
        self.active = active
        if active:
            if self._image_features is None:
                self._compute_image_features()
            self.refresh_fewshot()
        else:
            self._jobs["image"].cancel()

    def set_bundle(self, bundle) -> None:
        """Use `bundle` (or None): its heads fill the chooser; examples are re-encoded."""
        self.bundle = bundle
        self._loaded = {k: h for k, h in self._loaded.items() if k.startswith("file:")}
        self._features.clear()
        self._image_features = None
        for kind in ("image", "examples", "fit"):
            self._jobs[kind].cancel()  # results for the previous model are dropped
        self._fill_heads()
        self._compute_image_features()
        self.refresh_fewshot()

    def set_image(self, rgb: np.ndarray | None, name: str = "") -> None:
        """The image to name (uint8 [H,W,3]) or None; `name` labels it as an example."""
        self._image_name = name
        self._rgb = None if rgb is None else np.ascontiguousarray(rgb[..., :3], np.uint8)
        self._image_features = None
        self._jobs["image"].cancel()
        self._compute_image_features()

    def select_head(self, key: str | None) -> None:
        self.head_key = key
        self._predict()

    # -- heads -----------------------------------------------------------------------------

    def current_head(self) -> Head | None:
        key = self.head_key
        if key is None:
            return None
        if key == FEWSHOT:
            return self.fewshot_head
        if key not in self._loaded and key.startswith("bundle:"):
            try:
                head = bundle_head(self.bundle, key.split(":", 1)[1])
                head.check_bundle(self.bundle)
            except MageError as e:
                self._set_status(str(e))
                return None
            self._loaded[key] = head
        return self._loaded.get(key)

    def load_head_file(self, path: str | Path) -> bool:
        """Add a head file to the choice and choose it; False (the status says why) if refused."""
        try:
            head = load_head(path)
            if self.bundle is not None:
                head.check_bundle(self.bundle)
        except MageError as e:
            self._set_status(str(e))
            return False
        key = f"file:{path}"
        self._loaded[key] = head
        self._choose(HeadEntry(key, f"File: {Path(path).name}"))
        return True

    def save_fewshot(self, path: str | Path) -> None:
        if self.fewshot_head is None:
            raise MageError("there is no few-shot classifier yet")
        self.fewshot_head.save(path)

    def _fill_heads(self) -> None:
        entries: list[HeadEntry] = []
        if self.bundle is not None:
            entries += [HeadEntry(f"bundle:{n}", f"Model: {n}") for n in self.bundle.manifest.heads]
        for entry in self.heads:  # file heads stay only if they suit the new model
            if entry.kind != "file":
                continue
            try:
                head = load_head(entry.key.split(":", 1)[1])
                if self.bundle is not None:
                    head.check_bundle(self.bundle)
            except MageError:
                self._loaded.pop(entry.key, None)
                continue
            self._loaded[entry.key] = head
            entries.append(entry)
        if self.fewshot_head is not None:
            entries.append(HeadEntry(FEWSHOT, "Few-shot (below)"))
        keys = [e.key for e in entries]
        self.heads = entries
        self.head_key = self.head_key if self.head_key in keys else (keys[0] if keys else None)
        self.heads_changed.emit()

    def _choose(self, entry: HeadEntry) -> None:
        if all(e.key != entry.key for e in self.heads):
            self.heads.append(entry)
        self.head_key = entry.key
        self.heads_changed.emit()
        self._predict()

    # -- predictions -------------------------------------------------------------------------

    def _compute_image_features(self) -> None:
        self._show_predictions([])
        if self.bundle is None or self._rgb is None or not self.active:
            self._predict()
            return
        bundle, rgb = self.bundle, self._rgb
        self._set_status("Looking…")
        self._jobs["image"].call("image", lambda: self._model(image_features, bundle, [rgb]))

    def _on_image_features(self, features: np.ndarray) -> None:
        self._image_features = features
        self._predict()

    def _predict(self) -> None:
        if self.bundle is None:
            return self._set_status("Open a model to recognise images.")
        head = self.current_head()
        if head is None:
            if not self.heads:
                self._set_status(
                    f"Model '{self.bundle.name}' has no classifier: teach one "
                    "below, load a head file, or make one with `python main.py "
                    "probe`."
                )
            return self._show_predictions([])
        if self._rgb is None:
            return self._set_status("Open an image to see what the model thinks it shows.")
        if self._image_features is None:
            return  # features are on their way (or wait until someone looks)
        try:
            best = topk(head, head.predict_proba(self._image_features), TOP)[0]
        except MageError as e:
            return self._set_status(str(e))
        self.not_sure = bool(best) and best[0][1] < head.not_sure_below
        if self.not_sure:
            # below the head's threshold the first name is no answer: say so, keep the guesses
            how = "calibrated on held-out photos" if head.calibrated else "uncalibrated head"
            self._set_status(
                f"Not sure: no class reaches {100 * head.not_sure_below:.0f}% ({how}). "
                f"Best guesses: {', '.join(name for name, _ in best[:3])}."
            )
        else:
            self._set_status("")
        self._show_predictions(best)

    def _show_predictions(self, best: list[tuple[str, float]]) -> None:
        self.predictions = list(best)
        if not best:
            self.not_sure = False
        self.predictions_changed.emit(self.predictions)

    def _set_status(self, text: str) -> None:
        self.status = text
        self.status_changed.emit(text)

    # -- few-shot classes ------------------------------------------------------------------

    def add_class(self, name: str = "") -> FewShotClass:
        cls = FewShotClass(name or f"class {len(self.classes) + 1}")
        self.classes.append(cls)
        return cls

    def remove_class(self, cls: FewShotClass) -> None:
        self.classes.remove(cls)
        self.refresh_fewshot()

    def rename_class(self, cls: FewShotClass, name: str) -> None:
        cls.name = name
        self.refresh_fewshot()

    def add_files(self, cls: FewShotClass, paths: list) -> list[Example]:
        """Example files (folders are searched) for `cls`; their thumbnails and features
        follow. [] with the few-shot status saying why when none can be used."""
        try:
            files = find_images(paths)
        except MageError as e:
            self._set_fewshot_status(str(e))
            return []
        added = [self._add(cls, f, f.name) for f in files]
        self._load_thumbs()
        self.refresh_fewshot()
        return added

    def add_current_image(self, cls: FewShotClass) -> Example | None:
        """The open image as an example (kept as a file for the next session)."""
        if self._rgb is None:
            self._set_fewshot_status("There is no image open to add.")
            return None
        base = self._image_name or "untitled image"
        used = {ex.label for ex in cls.examples}
        label, n = base, 2
        while label in used:
            label, n = f"{base} ({n})", n + 1
        example = self._add(cls, self._rgb.copy(), label)
        self.thumbs.add(example.id)
        if self._store is not None:
            example.file = keep_copy(self._rgb)
        self.refresh_fewshot()
        return example

    def restore(self) -> list[FewShotClass]:
        """The classes and examples of the last session; files gone since are skipped."""
        if self._store is None:
            return []
        self._restoring = True
        missing = 0
        moved = migrate_fewshot_folder()
        try:
            for entry in self._store.fewshot_classes():
                cls = self.add_class(str(entry.get("name", "")))
                for example in entry.get("examples", []):
                    file = str(example.get("file", ""))
                    path = Path(moved.get(file, file))
                    if not path.is_file():
                        missing += 1
                        continue
                    self._add(cls, path, str(example.get("label") or path.name))
        finally:
            self._restoring = False
        if missing:
            self._note = f" ({missing} example file(s) from last time are gone)"
        self._load_thumbs()
        self.refresh_fewshot()
        return list(self.classes)

    def _add(self, cls: FewShotClass, source: Path | np.ndarray, label: str) -> Example:
        example = Example(next(_ids), source, label)
        cls.examples.append(example)
        return example

    def _save_classes(self) -> None:
        if self._store is None or self._restoring:
            return
        classes = []
        for cls in self.classes:
            examples = []
            for ex in cls.examples:
                file = str(ex.source) if isinstance(ex.source, Path) else ex.file
                if file:
                    examples.append({"file": file, "label": ex.label})
            classes.append({"name": cls.name, "examples": examples})
        self._store.save_fewshot_classes(classes)

    def refresh_fewshot(self) -> None:
        """Save the classes, encode examples that lack features (while active), then refit;
        stale results are ignored."""
        self._save_classes()
        self._jobs["fit"].cancel()
        classes = [c for c in self.classes if c.examples]
        if self.bundle is None or len(classes) < 2:
            return self._set_fewshot(None, NEEDS_CLASSES)
        names = [c.name.strip() for c in classes]
        if "" in names or len(set(names)) < len(names):
            return self._set_fewshot(None, "Give every class its own name.")
        todo = [ex for c in classes for ex in c.examples if ex.id not in self._features]
        bundle = self.bundle
        if todo:
            self._set_fewshot_status(f"Reading {len(todo)} example(s)…")
            if self.active:
                self._jobs["examples"].call(
                    "examples", lambda: self._model(_encode_examples, bundle, todo)
                )
            return
        x = np.stack([self._features[ex.id] for c in classes for ex in c.examples])
        y = np.array([i for i, c in enumerate(classes) for _ in c.examples])
        self._set_fewshot_status("Fitting…")
        self._jobs["fit"].call("fit", lambda: _fit(bundle, x, y, names))

    def _on_examples(self, result: tuple) -> None:
        bundle, features, bad, thumbs = result
        if bundle is not self.bundle:
            return
        self._features.update(features)
        fresh = {
            ex.id: thumbs[ex.id]
            for cls in self.classes
            for ex in cls.examples
            if ex.id in thumbs and isinstance(ex.source, Path) and ex.id not in self.thumbs
        }
        if fresh:
            self.thumbs.update(fresh)
            self.thumbnails_ready.emit(fresh)
        if bad:  # unreadable files leave their class
            for cls in self.classes:
                cls.examples = [ex for ex in cls.examples if ex.id not in bad]
            self._note = f" Skipped {len(bad)} unreadable file(s): {next(iter(bad.values()))}"
            self.examples_changed.emit()
        self.refresh_fewshot()

    def _load_thumbs(self) -> None:
        """Small pictures of the example files not shown yet, read on their own thread (a
        quick JPEG draft, no model), so they appear as soon as the files are read."""
        todo = [
            (ex.id, ex.source)
            for cls in self.classes
            for ex in cls.examples
            if ex.id not in self.thumbs and isinstance(ex.source, Path)
        ]
        if todo:
            self._jobs["thumbs"].call("thumbs", lambda: _quick_thumbs(todo))

    def _on_thumbs(self, thumbs: dict) -> None:
        shown = {ex.id for cls in self.classes for ex in cls.examples}
        fresh = {i: t for i, t in thumbs.items() if i in shown and i not in self.thumbs}
        if fresh:
            self.thumbs.update(fresh)
            self.thumbnails_ready.emit(fresh)
        self._load_thumbs()  # examples dropped while these were read

    def _on_fit(self, result: tuple[Head, float | None]) -> None:
        head, loo = result
        shots = head.info.get("shots", 1)
        text = (
            f"Classifier ready: {len(head.class_names)} classes, "
            f"{head.info['train_size']} examples ({head.kind}). "
        )
        if loo is not None:
            text += (
                f"Leave-one-out accuracy {100 * loo:.0f}% (chance "
                f"{100 / len(head.class_names):.0f}%)."
            )
        elif shots < 2:
            text += "Add 2 or more examples per class to estimate its accuracy."
        self._set_fewshot(head, text + self._note, loo)
        self._note = ""

    def _set_fewshot(self, head: Head | None, text: str, loo: float | None = None) -> None:
        had = self.fewshot_head is not None
        self.fewshot_head, self.fewshot_loo = head, loo
        self._set_fewshot_status(text)
        if head is not None:
            self._choose(HeadEntry(FEWSHOT, "Few-shot (below)"))
        elif had:
            self.heads = [e for e in self.heads if e.key != FEWSHOT]
            if self.head_key == FEWSHOT:
                self.head_key = self.heads[0].key if self.heads else None
            self.heads_changed.emit()
            self._predict()
        if head is not None or had:
            self.fewshot_changed.emit()

    def _set_fewshot_status(self, text: str) -> None:
        self.fewshot_status = text
        self.fewshot_status_changed.emit(text)

    # -- jobs ------------------------------------------------------------------------------

    def _model(self, fn, *args):
        """Worker: one model call, after any other has finished."""
        with self._model_lock:
            return fn(*args)

    def _on_failed(self, kind: str, message: str) -> None:
        (self._set_status if kind == "image" else self._set_fewshot_status)(message)

    def busy(self) -> bool:
        return any(self._jobs[kind].busy for kind in ("image", "examples", "fit"))

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Process events until no model job runs (results are delivered; a fit may follow)."""
        while self.busy():
            if not all(jobs.wait_idle(msecs / 1000) for jobs in self._jobs.values()):
                return False
        return True

    def stop_jobs(self) -> None:
        """Cancel the model calls and thumbnail reads and wait for them (on close, and when the
        application quits: a thread must not report to an object that is gone)."""
        for jobs in self._jobs.values():
            jobs.cancel()  # a cancelled job that has not started yet ends at once
        self.pool.waitForDone(10000)


def _encode_examples(bundle, examples: list[Example]) -> tuple[object, dict, dict, dict]:
    """Worker: (bundle, example id -> features, example id -> why unreadable, example id ->
    a small picture)."""
    ok: list[int] = []
    images: list[np.ndarray] = []
    bad: dict[int, str] = {}
    thumbs: dict[int, np.ndarray] = {}
    for ex in examples:
        try:
            rgb = load_image(ex.source).rgb if isinstance(ex.source, Path) else ex.source
        except MageError as e:
            bad[ex.id] = str(e)
            continue
        ok.append(ex.id)
        images.append(rgb)
        step = max(1, max(rgb.shape[:2]) // THUMB_SIDE)
        thumbs[ex.id] = np.ascontiguousarray(rgb[::step, ::step])
    feats: np.ndarray | list[np.ndarray] = image_features(bundle, images) if images else []
    return bundle, dict(zip(ok, feats, strict=True)), bad, thumbs


def _quick_thumbs(examples: list[tuple[int, Path]]) -> dict[int, np.ndarray]:
    """Worker: example id -> a small RGB picture; unreadable files are left out (the encoder
    reports them)."""
    from PIL import Image

    out = {}
    for example_id, path in examples:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decoded at a fraction
                rgb = image.convert("RGB")
                rgb.thumbnail((THUMB_SIDE, THUMB_SIDE))
                out[example_id] = np.asarray(rgb)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return out


def _fit(bundle, x: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[Head, float | None]:
    """Worker: the few-shot head and, with 2+ examples in every class, its LOO accuracy."""
    head = fit_fewshot(x, y, names, bundle=bundle)
    loo = None
    if np.bincount(y).min() >= 2:
        kind = "logistic" if head.kind == "linear" else "centroid"
        loo = leave_one_out_accuracy(x, y, names, kind, folds=None if kind == "centroid" else 5)
    return head, loo


def fewshot_folder() -> Path:
    """Where copies of in-memory examples are kept: in the user data folder."""
    return user_data_dir() / EXAMPLES_FOLDER


def doubled_fewshot_folder() -> Path:
    """Where earlier versions kept them: Qt's AppDataLocation, which names the organisation
    and the application, both "MAGE Studio" (".../MAGE Studio/MAGE Studio/...")."""
    return user_data_dir() / user_data_dir().name / EXAMPLES_FOLDER


def migrate_fewshot_folder() -> dict[str, str]:
    """Moves the example copies out of the doubled folder (removed once empty); returns old
    path -> new path for each file moved, or already there. Files that cannot move stay."""
    old, new = doubled_fewshot_folder(), fewshot_folder()
    moved: dict[str, str] = {}
    if not old.is_dir():
        return moved
    try:
        new.mkdir(parents=True, exist_ok=True)
        for path in sorted(old.iterdir()):
            target = new / path.name
            if path.is_file() and not target.exists():
                os.replace(path, target)
            if target.is_file():
                moved[str(path)] = str(target)
        old.rmdir()  # only when empty
        old.parent.rmdir()
    except OSError:
        pass  # what did not move is still found where it was
    return moved


def keep_copy(rgb: np.ndarray) -> str:
    """Save an in-memory example (the open image) as a PNG in the user data folder, so the
    class keeps it after a restart; "" when that is not possible."""
    from PIL import Image

    folder = fewshot_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.ascontiguousarray(rgb[..., :3], np.uint8))
        image.thumbnail((1024, 1024))
        path = folder / f"{uuid.uuid4().hex}.png"
        image.save(path)
        return str(path)
    except (OSError, ValueError):
        return ""
