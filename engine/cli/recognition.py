"""Recognition commands for the command line: classify, probe, fewshot.

    python main.py classify IMAGE_OR_FOLDER... [--head FILE] [-k 5]
    python main.py probe --data DIR -o HEAD.npz [--epochs 100] [--val 0.2] [--into-bundle]
    python main.py fewshot --data DIR -o HEAD.npz [-k 5]

A labelled folder has one sub-folder of images per class. See docs/recognition.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from engine.runtime.errors import MageError, OutputError
from engine.runtime.recognition import bundle_head, check_head_name, store_in_bundle

PROGRESS_FROM = 5  # show a progress bar from this many images on


MAX_TOP = 1000
MAX_BATCH = 256
MAX_EPOCHS = 10_000
MAX_SHOTS = 1000
MAX_SEED = 2**32 - 1


def add_commands(sub, add_model_options) -> None:
    """Register the recognition sub-commands on the CLI's sub-parser set."""
    from engine.cli.console import float_in, int_in

    p = sub.add_parser(
        "classify",
        help="name what is in images (top-k classes)",
        description="Print the top-k classes with probabilities per image.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="IMAGE_OR_FOLDER",
        help="image files, or folders searched recursively for images",
    )
    p.add_argument(
        "--head",
        type=Path,
        help="classifier head .npz from `probe` or `fewshot` "
        "(default: the model's first built-in head)",
    )
    p.add_argument(
        "-k",
        "--top",
        type=int_in(1, MAX_TOP),
        default=5,
        help=f"how many classes to show (1..{MAX_TOP})",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    _add_batch(p)
    add_model_options(p)
    p.set_defaults(handler=cmd_classify)

    p = sub.add_parser(
        "probe",
        help="train a linear classifier on a labelled folder",
        description="Linear probe on frozen features: standardised features, "
        "softmax classifier trained with Adam + weight decay; prints train and "
        "held-out accuracy. The head is trained on the train split only.",
    )
    _add_data(p)
    p.add_argument("-o", "--output", type=Path, help="head file to write (.npz)")
    p.add_argument(
        "--into-bundle",
        nargs="?",
        const="",
        metavar="NAME",
        help="also store the head in the model folder as heads/NAME.npz (default "
        "NAME: the data folder's name) so `classify` uses it by default",
    )
    p.add_argument(
        "--epochs",
        type=int_in(1, MAX_EPOCHS),
        default=100,
        help=f"passes over the training data (1..{MAX_EPOCHS})",
    )
    p.add_argument(
        "--lr",
        type=float_in(0, 10, low_open=True),
        default=0.01,
        help="peak learning rate (cosine decay; above 0, at most 10)",
    )
    p.add_argument(
        "--weight-decay", type=float_in(0, 10), default=1e-4, help="decoupled weight decay (0..10)"
    )
    p.add_argument(
        "--val",
        type=float_in(0, 1, high_open=True),
        default=0.2,
        help="held-out fraction per class, 0 to below 1 (deterministic by --seed; 0 = none)",
    )
    p.add_argument(
        "--seed", type=int_in(0, MAX_SEED), default=0, help="seed for the split and shuffling"
    )
    _add_batch(p)
    add_model_options(p)
    p.set_defaults(handler=cmd_probe)

    p = sub.add_parser(
        "fewshot",
        help="build a classifier from K examples per class",
        description="Few-shot classifier: nearest class centroid (cosine, "
        "temperature softmax); with K >= 5 logistic regression when "
        "cross-validation finds it better. K examples per class are drawn "
        "(by --seed) from each sub-folder; the rest can be used to evaluate.",
    )
    _add_data(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="head file to write (.npz)")
    p.add_argument(
        "-k",
        "--shots",
        type=int_in(1, MAX_SHOTS),
        default=5,
        help=f"examples per class (1-10 usual, at most {MAX_SHOTS})",
    )
    p.add_argument(
        "--kind",
        choices=("auto", "centroid", "logistic"),
        default="auto",
        help="classifier kind (auto: centroid, or logistic if better with K >= 5)",
    )
    p.add_argument(
        "--temperature",
        type=float_in(0, 100, low_open=True),
        default=0.1,
        help="softmax temperature of the centroid head (lower = more confident; "
        "above 0, at most 100)",
    )
    p.add_argument(
        "--eval-rest",
        action="store_true",
        help="also report accuracy on the images not drawn as examples",
    )
    p.add_argument(
        "--seed", type=int_in(0, MAX_SEED), default=0, help="seed for drawing the examples"
    )
    _add_batch(p)
    add_model_options(p)
    p.set_defaults(handler=cmd_fewshot)


def _add_data(p) -> None:
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="labelled folder: one sub-folder of images per class",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing head file (or a head of that name in the model)",
    )


def _add_batch(p) -> None:
    from engine.cli.console import int_in

    p.add_argument(
        "--batch-size",
        type=int_in(1, MAX_BATCH),
        default=16,
        help=f"images per model call (1..{MAX_BATCH})",
    )


# -- helpers ------------------------------------------------------------------------------------


def _load_bundle(args):
    from engine.cli.console import open_bundle as _load_bundle

    bundle = _load_bundle(args)
    if not (bundle.path / "features.onnx").is_file():
        raise MageError(
            f"model '{bundle.name}' has no features.onnx, so it cannot recognise images"
        )
    return bundle


def _features_of_files(
    bundle, files: list[Path], batch_size: int, label: str, on_bad=None
) -> tuple[np.ndarray, list[Path]]:
    """Features of image files with a progress bar; `on_bad(path, error)` skips unreadable
    files (else they raise). Returns (features, files kept)."""
    from engine.cli.console import Progress
    from engine.runtime.imageio import load_image
    from engine.runtime.recognition import image_features

    if batch_size < 1:
        raise MageError("--batch-size must be at least 1")
    kept: list[Path] = []
    seen = [0]
    bar = Progress(label, len(files)) if len(files) >= PROGRESS_FROM else None

    def images():
        for f in files:
            seen[0] += 1
            try:
                rgb = load_image(f).rgb
            except MageError as e:
                if on_bad is None:
                    raise
                on_bad(f, e)
                continue
            kept.append(f)
            yield rgb

    def progress(_done):
        if bar:
            bar.update(seen[0])

    try:
        feats = image_features(bundle, images(), batch_size, progress)
    finally:
        if bar:
            bar.close()
    return feats, kept


def _check_out(path: Path | None, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    from engine.cli.console import MAX_NAME_BYTES, clean_stale_temps, safe_text

    if path is None:
        return
    shown = safe_text(path)
    if path.suffix.lower() != ".npz":
        raise OutputError(f"head file must end in .npz: {shown}")
    if not path.parent.is_dir():
        raise OutputError(f"output folder does not exist: {safe_text(path.parent)}")
    if len(os.fsencode(path.name)) > MAX_NAME_BYTES:
        raise OutputError(f"output name is too long (at most {MAX_NAME_BYTES} bytes): {shown}")
    if path.is_dir():
        raise OutputError(f"output {shown} is a folder")
    if path.exists():
        for src in inputs:
            if src is not None and src.exists() and os.path.samefile(path, src):
                raise OutputError(f"output {shown} is the input file: refusing to overwrite it")
        if not overwrite:
            raise OutputError(f"output {shown} exists (use --overwrite to replace it)")
    clean_stale_temps([path])


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


# -- commands -----------------------------------------------------------------------------------


def cmd_classify(args) -> int:
    from engine.runtime.recognition import find_images, load_head, topk

    files = find_images(args.inputs)
    if not files:
        raise MageError("no images found in " + ", ".join(map(str, args.inputs)))
    head = load_head(args.head) if args.head else None
    bundle = _load_bundle(args)
    head = head or bundle_head(bundle)
    for notice in head.check_bundle(bundle):
        print(f"notice: {notice}", file=sys.stderr)
    given = {Path(p) for p in args.inputs if Path(p).is_file()}
    skipped = []

    def on_bad(path, error):
        if path in given:  # an image the user named must load
            raise error
        skipped.append(path)
        print(f"\nwarning: skipped {path}: {error}", file=sys.stderr)

    feats, kept = _features_of_files(bundle, files, args.batch_size, "classify", on_bad)
    if not kept:
        raise MageError("none of the images could be read")
    for path, best in zip(kept, topk(head, head.predict_proba(feats), args.top), strict=True):
        if args.json:
            print(
                json.dumps(
                    {
                        "image": str(path),
                        "top": [{"class": c, "probability": round(p, 6)} for c, p in best],
                    }
                )
            )
        else:
            print(f"{path}: " + " | ".join(f"{c} {100 * p:.1f}%" for c, p in best))
    return 0


def _labelled_features(bundle, root: Path, batch_size: int, picks=None):
    """Features of a labelled folder (optionally only the files `picks(names, files)` keeps)."""
    from engine.runtime.recognition import labelled_folder

    names, per_class = labelled_folder(root)
    if picks is not None:
        per_class = picks(names, per_class)
    label_of = {f: c for c, fs in enumerate(per_class) for f in fs}

    def on_bad(path, error):
        print(f"\nwarning: skipped {path}: {error}", file=sys.stderr)

    feats, kept = _features_of_files(bundle, list(label_of), batch_size, "features", on_bad)
    labels = np.array([label_of[f] for f in kept], int)
    missing = [n for c, n in enumerate(names) if not (labels == c).any()]
    if missing:
        raise MageError(f"no readable images for class(es): {', '.join(missing)}")
    return names, feats, labels


def cmd_probe(args) -> int:
    from engine.runtime.recognition import accuracy, fit_linear_probe, split_indices

    if args.output is None and args.into_bundle is None:
        raise MageError("say where the head goes: -o HEAD.npz and/or --into-bundle")
    if not 0 <= args.val < 1:
        raise MageError("--val must be in [0, 1)")
    if args.epochs < 1:
        raise MageError("--epochs must be at least 1")
    _check_out(args.output, args.overwrite)
    name = None
    if args.into_bundle is not None:
        name = args.into_bundle or args.data.resolve().name
        check_head_name(name)
    bundle = _load_bundle(args)
    if (
        name is not None
        and not args.overwrite
        and (name in bundle.manifest.heads or (bundle.path / "heads" / f"{name}.npz").exists())
    ):
        raise OutputError(
            f"model '{bundle.name}' already has a head '{name}' (use --overwrite "
            "to replace it, or give another NAME)"
        )
    names, x, y = _labelled_features(bundle, args.data, args.batch_size)
    tr, va = split_indices(y, args.val, args.seed)
    head = fit_linear_probe(
        x[tr],
        y[tr],
        names,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        bundle=bundle,
    )
    head.info.update(
        {
            "data": str(args.data),
            "val_fraction": args.val,
            "seed": args.seed,
            "val_size": len(va),
            "val_accuracy": accuracy(head, x[va], y[va]),
        }
    )
    print(
        f"classes: {len(names)}  train: {len(tr)}  held-out: {len(va)}  "
        f"chance: {_pct(1 / len(names))}"
    )
    print(f"train accuracy:    {_pct(head.info['train_accuracy'])}")
    print(f"held-out accuracy: {_pct(head.info['val_accuracy'])}")
    _write_head(head, args.output)
    if name is not None:
        print(f"stored in the model: {store_in_bundle(bundle, head, name)}")
    return 0


def _write_head(head, path: Path | None) -> None:
    if path is not None:
        head.save(path)
        print(f"wrote {path}")


def cmd_fewshot(args) -> int:
    from engine.runtime.recognition import accuracy, fit_fewshot, labelled_folder

    if args.shots < 1:
        raise MageError("-k must be at least 1")
    if args.temperature <= 0:
        raise MageError("--temperature must be positive")
    _check_out(args.output, args.overwrite)
    names, per_class = labelled_folder(args.data)  # fail fast, before loading the model
    rng = np.random.default_rng(args.seed)
    chosen, rest = [], []
    for name, fs in zip(names, per_class, strict=True):
        order = rng.permutation(len(fs))
        chosen.append([fs[i] for i in sorted(order[: args.shots])])
        rest.append([fs[i] for i in sorted(order[args.shots :])])
        if len(fs) < args.shots:
            print(f"notice: class '{name}' has only {len(fs)} images", file=sys.stderr)
    bundle = _load_bundle(args)
    _, x, y = _labelled_features(bundle, args.data, args.batch_size, lambda n, f: chosen)
    head = fit_fewshot(
        x, y, names, kind=args.kind, temperature=args.temperature, seed=args.seed, bundle=bundle
    )
    head.info.update({"data": str(args.data), "seed": args.seed})
    print(
        f"classes: {len(names)}  examples: {len(y)}  kind: {head.kind}  "
        f"chance: {_pct(1 / len(names))}"
    )
    if "cv_accuracy" in head.info:
        cv = head.info["cv_accuracy"]
        print(f"5-fold accuracy: centroid {_pct(cv['centroid'])}, logistic {_pct(cv['logistic'])}")
    if args.eval_rest and any(rest):
        _, xr, yr = _labelled_features(bundle, args.data, args.batch_size, lambda n, f: rest)
        head.info["rest_accuracy"] = accuracy(head, xr, yr)
        print(f"accuracy on the other {len(yr)} images: {_pct(head.info['rest_accuracy'])}")
    _write_head(head, args.output)
    return 0
