"""MODEL_CARD.md sections on how a bundle's checkpoints were trained: the data and its
licences, the settings, the held-out metrics at the end (engine/modeling/export.py writes the card).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def card_details(
    tok: dict[str, Any], mage: dict[str, Any], credits: Path | None, notes: Path | None
) -> str:
    """MODEL_CARD.md sections: data and licences, training settings, metrics (+ notes)."""
    data = mage.get("data", {})
    lines = [
        "## Training data",
        "",
        f"- source: `{data.get('source')}`; {data.get('train_images')} training images, "
        f"{data.get('val_images')} held out (never trained on)",
    ]
    counts = data.get("counts", {})
    if isinstance(counts.get("train"), dict):
        lines.append(
            "- classes (train / held out): "
            + ", ".join(f"{c} {n}/{counts['val'].get(c, 0)}" for c, n in counts["train"].items())
        )
    if credits:
        lines.append(
            "- licences: every image's source, author and licence are listed in "
            "CREDITS.md (shipped beside this card); by image: " + licence_tally(credits)
        )
    else:
        lines.append("- licences: see the data source's own credits")
    for title, ckpt in (("Tokenizer training", tok), ("Transformer training", mage)):
        lines += ["", *training_section(title, ckpt)]
    lines += [
        "",
        "Metrics: tokenizer PSNR on held-out centre + random crops at the model size; "
        "transformer cross-entropy and accuracy on masked tokens of held-out images "
        "(mask ratios 0.5 / 0.75 / 0.9, no dropping), `train_*` on 64 training images.",
    ]
    if notes:
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines)


def training_section(title: str, ckpt: dict[str, Any]) -> list[str]:
    """A MODEL_CARD.md section on how one checkpoint was trained."""
    a = ckpt.get("train_args", {})
    keys = (
        "batch",
        "lr",
        "warmup",
        "wd",
        "minutes",
        "steps",
        "seed",
        "beta",
        "edge_weight",
        "fft_weight",
        "adv_weight",
        "adv_start",
        "disc_lr",
        "restart_every",
        "decoder_only",
        "init",
        "class_dropout",
        "label_smoothing",
        "dropout",
        "user_masks",
    )
    settings = ", ".join(f"{k} {a[k]}" for k in keys if a.get(k) not in (None, False))
    return [
        f"## {title}",
        "",
        f"- {ckpt.get('step')} steps in {ckpt.get('elapsed_s')} s on "
        f"{ckpt.get('device')} x{ckpt.get('world_size', 1)}",
        f"- settings: {settings}",
        f"- model config: `{json.dumps(ckpt.get('config'))}`",
        f"- held-out metrics at the end: `{json.dumps(ckpt.get('metrics'))}`",
    ]


def licence_tally(credits: Path) -> str:
    """Count licences in a CREDITS.md whose entries read "- `file` <- `origin`: LICENCE, ..."."""
    counts: dict[str, int] = {}
    for line in credits.read_text().splitlines():
        if line.startswith("- `") and "`: " in line:
            name = line.rsplit("`: ", 1)[1].split(",")[0].split(" (")[0].strip()
            counts[name] = counts.get(name, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v}" for k, v in top) or "see CREDITS.md"
