"""Help > About: the version, the model in use with its MODEL_CARD, what MAGE does, the paper."""

from __future__ import annotations

import os
import re
import stat
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

PACKAGE = "mage-studio"
CARD_FILE = "MODEL_CARD.md"
MAX_CARD_BYTES = 256 << 10  # cards are a few KB; a longer one is cut here
OWN_LINKS = frozenset({"https://arxiv.org/abs/2211.09117"})  # the only links that open
CITATION = (
    "Tianhong Li, Huiwen Chang, Shlok Kumar Mishra, Han Zhang, Dina Katabi, "
    "Dilip Krishnan. *MAGE: MAsked Generative Encoder to Unify Representation Learning "
    "and Image Synthesis.* CVPR 2023. "
    "[arXiv:2211.09117](https://arxiv.org/abs/2211.09117)"
)
BIBTEX = """@inproceedings{li2023mage,
  title     = {MAGE: MAsked Generative Encoder to Unify Representation Learning
               and Image Synthesis},
  author    = {Li, Tianhong and Chang, Huiwen and Mishra, Shlok Kumar and Zhang, Han
               and Katabi, Dina and Krishnan, Dilip},
  booktitle = {CVPR},
  year      = {2023}
}"""


def app_version() -> str:
    """The installed package's version, else the checkout's pyproject.toml version."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        found = re.search(
            r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE
        )
    except OSError:
        found = None
    return found.group(1) if found else "unknown"


def explanation(manifest=None) -> str:
    """What the model does, in a few sentences, with this model's numbers when known."""
    if manifest is not None:
        gh, gw = manifest.grid
        size, codes = manifest.image_size, manifest.codebook_size
        steps = int(manifest.decoding.get("steps", 12))
        cell = manifest.downsample
    else:
        gh, gw, size, codes, steps, cell = 16, 16, 256, 1024, 12, 16
    return (
        "MAGE works on **tokens**, not pixels. A VQGAN tokenizer turns a "
        f"{size} x {size} px square of the picture into a **{gh} x {gw} grid of tokens**, "
        f"each one entry of a {codes}-word codebook standing for about {cell} x {cell} px.\n\n"
        "In training a random share of the tokens (between half and all of them) is "
        "**masked**, hidden behind a mask token, and the transformer learns to predict the "
        "hidden tokens from the visible ones. To remove or fill something, MAGE Studio masks "
        "the tokens under your brush in a square of context around it.\n\n"
        "The fill is decided by **iterative decoding**: in each of "
        f"{steps} steps the transformer predicts every token still hidden, **keeps the "
        "predictions it is most confident of** and hides the rest again, so fewer stay hidden "
        "after every step (a cosine schedule). The tokenizer's decoder turns the final tokens "
        "back into pixels, which are blended into the photo. The confidence heatmap shows how "
        "sure the model was of each token it chose.\n\n"
        "The same encoder that reads the visible tokens also gives **features for "
        "recognition**: with nothing masked, its output averaged over the tokens describes "
        "the whole image, and a linear classifier on it gives the Recognition tab's top "
        "classes."
    )


def about_markdown(bundle=None, model_problem: str = "") -> str:
    """The whole About text as Markdown."""
    parts = [
        f"# MAGE Studio {app_version()}",
        "A desktop image editor that runs a MAGE masked generative transformer locally "
        "and offline.",
        "## Model in use",
    ]
    manifest = None
    if bundle is not None:
        manifest = bundle.manifest
        gh, gw = manifest.grid
        classes = (
            f"{len(manifest.class_names)} classes"
            if manifest.class_conditional
            else "unconditional"
        )
        parts.append(
            f"**{manifest.name}**: {manifest.image_size} px, {gh} x {gw} tokens, "
            f"codebook {manifest.codebook_size}, {classes}, running on "
            f"{str(bundle.device).upper()}.  \nFolder: `{bundle.path}`"
        )
    else:
        parts.append(f"No model loaded{': ' + model_problem if model_problem else ''}.")
    parts += [
        "## What the model does",
        explanation(manifest),
        "## Paper",
        CITATION,
        f"```\n{BIBTEX}\n```",
    ]
    card = _model_card(bundle)
    if card:
        parts += ["## Model card", _demote_headings(card)]
    elif bundle is not None:
        parts += ["## Model card", f"This model has no {CARD_FILE}."]
    return "\n\n".join(parts) + "\n"


def _model_card(bundle) -> str:
    if bundle is None:
        return ""
    text, problem = read_card(Path(bundle.path))
    if problem:
        return f"*{CARD_FILE} is not shown: {problem}.*"
    return safe_text(text).strip()


def read_card(folder: Path, limit: int = MAX_CARD_BYTES) -> tuple[str, str]:
    """The text of `folder`/MODEL_CARD.md and "", or "" and why it is not read (one phrase).

    A card comes with a bundle from anyone, so it is read only when it is a regular file
    inside the bundle folder (a link may point elsewhere in the folder, never outside it),
    opened without blocking (a FIFO or a device is refused, never waited on) and read up to
    `limit` bytes (a longer card is cut there, with a note)."""
    path = folder / CARD_FILE
    try:
        os.lstat(path)
    except FileNotFoundError:
        return "", ""
    except OSError as error:
        return "", f"cannot read it ({error.strerror or error})"
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(folder.resolve()):
            return "", "it is a link to a file outside the model folder"
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                return "", "it is not a regular file"
            data = stream.read(limit + 1)
    except (OSError, RuntimeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return "", f"cannot read it ({reason})"
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n\n*(cut at {limit // 1024} KB)*"
    return text, ""


# Bidirectional overrides and isolates (U+202E makes "gnp.exe" read "exe.png"), zero-width
# marks and other invisible controls are shown as visible codes, never applied.
_INVISIBLE = re.compile(
    r"[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\x00-\x08\x0b-\x1f\x7f]"
)


def safe_text(text: str) -> str:
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def _demote_headings(markdown: str) -> str:
    """The card's headings one level below the About's own ("# name" -> "### name")."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append("##" + line if not fenced and re.match(r"#{1,4} ", line) else line)
    return "\n".join(out)


class AboutDialog(QDialog):
    def __init__(self, bundle=None, model_problem: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle("About MAGE Studio")
        self.resize(820, 720)
        self.browser = QTextBrowser()
        self.browser.setObjectName("about-text")
        # Links open only when they are the About's own (the paper); anything a model card
        # links to (file:, a look-alike address) is shown but opens nothing.
        self.browser.setOpenExternalLinks(False)
        self.browser.setOpenLinks(False)
        self.browser.anchorClicked.connect(self._open_link)
        self.markdown = about_markdown(bundle, model_problem)
        self.browser.document().setMarkdown(
            self.markdown,
            QTextDocument.MarkdownFeature.MarkdownDialectGitHub
            | QTextDocument.MarkdownFeature.MarkdownNoHTML,
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def _open_link(self, url: QUrl) -> bool:
        """Opens `url` in the browser when it is one of the About's own links."""
        if url.toString() not in OWN_LINKS:
            return False
        return QDesktopServices.openUrl(url)


def show_about(window) -> AboutDialog:
    """Opens About for the window's current model (non-modal; Close or Esc closes it)."""
    models = window.editor.models
    dialog = AboutDialog(models.bundle, models.error, window)
    dialog.show()
    window.about_dialog = dialog
    return dialog
