"""RunPanel: what to do (mode, class, extend side), how (decoding settings), the cost, and
the Run / Cancel buttons with per-step progress."""

from __future__ import annotations

from dataclasses import replace

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.options import MODE_TITLES, MODES, TEXTURE_TITLES, EditOptions
from app.editor import Editor
from app.planner import masked_counts
from app.runs import SIDES, Step
from app.ui.panels.class_picker import ClassPicker


def hide_row(combo: QComboBox, row: int, hidden: bool) -> None:
    """Hides or shows one of a combo box's choices (in its list view, Qt's default)."""
    view = combo.view()
    assert isinstance(view, QListView)
    view.setRowHidden(row, hidden)


class RunPanel(QWidget):
    def __init__(self, editor: Editor, parent=None):
        super().__init__(parent)
        self.editor = editor
        self._syncing = False
        layout = QVBoxLayout(self)
        # Run and its cost right under the task, above the fold in a small window
        layout.addWidget(self._build_task())
        layout.addWidget(self._build_run())
        layout.addWidget(self._build_settings())
        layout.addStretch(1)
        editor.options_changed.connect(self.show_options)
        # bound methods, not lambdas: Qt drops them when the panel is destroyed
        editor.plan_changed.connect(self._show_cost)
        editor.progress.connect(self._on_progress)
        editor.busy_changed.connect(self._on_busy)
        editor.document_changed.connect(self._on_document)
        editor.models.loaded.connect(self._on_bundle)
        editor.models.failed.connect(self._on_bundle)
        self.show_options(editor.options)
        self._on_bundle()

    # -- building ---------------------------------------------------------------------------

    def _build_task(self) -> QGroupBox:
        box = QGroupBox("Task")
        form = QFormLayout(box)
        self.mode = QComboBox()
        for mode in MODES:
            self.mode.addItem(MODE_TITLES[mode], mode)
        self.mode.setToolTip(
            "Remove / fill: refill the painted area from its surroundings\n"
            "Fill as class: refill it as the chosen class (each candidate is the best of a\n"
            "few samples, as the model's own recognition reads them)\n"
            "Generate: a whole new image\nExtend: grow the canvas on one side"
        )
        form.addRow("Mode", self.mode)
        self.of_class = QCheckBox("Of the chosen class")
        form.addRow("", self.of_class)
        self.class_label = QLabel("Class")
        self.classes = ClassPicker()
        form.addRow(self.class_label, self.classes)
        # what the typed text matched; class names come from model files: plain text only
        self.class_hint = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.class_hint.setStyleSheet("color: palette(placeholder-text)")
        form.addRow("", self.class_hint)
        self.classes.hint_changed.connect(self._show_class_hint)
        self.side_label = QLabel("Side")
        self.side = QComboBox()
        self.side.addItems(SIDES)
        form.addRow(self.side_label, self.side)
        self.texture_label = QLabel("Texture")
        self.texture = QComboBox()
        for texture, title in TEXTURE_TITLES.items():
            self.texture.addItem(title, texture)
        self.texture.setToolTip(
            "From the photo: the model decides what goes where, the photo's own pixels how it\n"
            "looks up close (sharp grass, bark, stone)\n"
            "Model only: the model's decoded fill, smoother\n"
            "Classic (no model): texture synthesis from the surroundings, no model at all"
        )
        form.addRow(self.texture_label, self.texture)
        self.texture.currentIndexChanged.connect(self._commit)
        self.cells_label = QLabel("Tokens")
        self.cells = QSpinBox(minimum=1, maximum=15)
        self.cells.setToolTip("How many token columns/rows to add")
        form.addRow(self.cells_label, self.cells)
        self.mode.currentIndexChanged.connect(self._commit)
        self.of_class.toggled.connect(self._commit)
        self.classes.class_chosen.connect(self._commit)
        self.side.currentIndexChanged.connect(self._commit)
        self.cells.valueChanged.connect(self._commit)
        return box

    def _build_settings(self) -> QGroupBox:
        box = QGroupBox("Settings")
        form = QFormLayout(box)
        self.steps = QSpinBox(minimum=0, maximum=64)
        self.steps.setSpecialValueText("model default")
        self.steps.setToolTip("Decoding steps: more is slower and often cleaner")
        self.temperature = QDoubleSpinBox(minimum=-1.0, maximum=20, singleStep=0.5, decimals=1)
        self.temperature.setSpecialValueText("model default")
        self.temperature.setToolTip(
            "Choice temperature: randomness of which tokens are kept at each step"
        )
        seed_row = QHBoxLayout()
        self.fixed_seed = QCheckBox("Fixed")
        self.fixed_seed.setToolTip("Off: new random seeds on every run")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        seed_row.addWidget(self.fixed_seed)
        seed_row.addWidget(self.seed, 1)
        self.candidates = QSpinBox(minimum=1, maximum=8)
        self.candidates.setToolTip("Candidates from one batched run (seed, seed+1, ...)")
        self.ring = QSpinBox(minimum=0, maximum=4)
        self.ring.setToolTip("Extra ring of tokens regenerated around the painted ones")
        self.feather = QDoubleSpinBox(
            minimum=-1, maximum=200, singleStep=1, decimals=0, suffix=" px"
        )
        self.feather.setSpecialValueText("auto")
        self.feather.setToolTip("Blend width at the edge of the refilled area")
        form.addRow("Steps", self.steps)
        form.addRow("Temperature", self.temperature)
        form.addRow("Seed", seed_row)
        form.addRow("Candidates", self.candidates)
        form.addRow("Mask ring", self.ring)
        form.addRow("Feather", self.feather)
        self.seamless = QCheckBox("Seamless blend")
        self.seamless.setToolTip(
            "Model-only fills (and fills as class): keep the fill's detail but make its "
            "colours meet the photo at the edge (gradient-domain blending). Off: paste the "
            "fill as decoded, feathered. A fill with texture from the photo is seamless anyway"
        )
        form.addRow("", self.seamless)
        for spin in (self.steps, self.seed, self.candidates, self.ring):
            spin.valueChanged.connect(self._commit)
        for number in (self.temperature, self.feather):
            number.valueChanged.connect(self._commit)
        self.fixed_seed.toggled.connect(self._commit)
        self.seamless.toggled.connect(self._commit)
        return box

    def _build_run(self) -> QGroupBox:
        box = QGroupBox("Run")
        column = QVBoxLayout(box)
        self.cost = QLabel(wordWrap=True)
        column.addWidget(self.cost)
        row = QHBoxLayout()
        self.run_button = QPushButton(qta.icon("mdi6.play", color="#4caf50"), "Run")
        self.run_button.setToolTip("Run (Shift+R)")
        self.cancel_button = QPushButton(qta.icon("mdi6.stop", color="#ef5350"), "Cancel")
        self.cancel_button.setToolTip("Stop at the next step (Ctrl+.)")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button, 1)
        row.addWidget(self.cancel_button)
        column.addLayout(row)
        self.progress = QProgressBar(textVisible=True)
        self.progress.setFormat("Idle")
        self.progress.setValue(0)
        column.addWidget(self.progress)
        self.run_button.clicked.connect(self.editor.start_run)
        self.cancel_button.clicked.connect(self.editor.cancel_run)
        return box

    # -- options <-> widgets --------------------------------------------------------------

    def show_options(self, options: EditOptions) -> None:
        self._syncing = True
        self.mode.setCurrentIndex(MODES.index(options.mode))
        self.of_class.setChecked(options.generate_class)
        self.classes.select(options.class_name)
        self.side.setCurrentText(options.extend_side)
        self.cells.setValue(options.extend_cells)
        self.steps.setValue(options.steps)
        self.temperature.setValue(options.temperature if options.temperature >= 0 else -1)
        self.fixed_seed.setChecked(options.fixed_seed)
        self.seed.setValue(options.seed)
        self.seed.setEnabled(options.fixed_seed)
        self.candidates.setValue(options.candidates)
        self.ring.setValue(options.ring)
        self.feather.setValue(options.feather if options.feather >= 0 else -1)
        self.seamless.setChecked(options.seamless)
        self.texture.setCurrentIndex(max(self.texture.findData(options.texture), 0))
        self._syncing = False
        self._show_fields(options)
        self._show_cost()

    def _commit(self, *_) -> None:
        if self._syncing:
            return
        options = replace(
            self.editor.options,
            mode=self.mode.currentData(),
            generate_class=self.of_class.isChecked(),
            class_name=self.classes.chosen(),
            extend_side=self.side.currentText(),
            extend_cells=self.cells.value(),
            steps=self.steps.value(),
            temperature=self.temperature.value() if self.temperature.value() >= 0 else -1.0,
            fixed_seed=self.fixed_seed.isChecked(),
            seed=self.seed.value(),
            candidates=self.candidates.value(),
            ring=self.ring.value(),
            feather=self.feather.value() if self.feather.value() >= 0 else -1.0,
            seamless=self.seamless.isChecked(),
            texture=self.texture.currentData(),
        )
        self.seed.setEnabled(options.fixed_seed)
        self._show_fields(options)
        self.editor.set_options(options)

    def _show_fields(self, options: EditOptions) -> None:
        bundle = self.editor.bundle
        conditional = bundle is not None and bundle.manifest.class_conditional
        class_row = conditional and options.uses_class()
        self.of_class.setVisible(conditional and options.mode == "generate")
        self.class_label.setVisible(class_row)
        self.classes.setVisible(class_row)
        self.class_hint.setVisible(class_row and bool(self.class_hint.text()))
        needs_class = bundle is not None and bundle.manifest.needs_class
        self.of_class.setEnabled(not needs_class)  # a class-only model always draws a class
        self.of_class.setToolTip(
            "This model always generates a class" if needs_class else "Off: any image"
        )
        self._show_runnable(options)
        for widget in (self.side_label, self.side, self.cells_label, self.cells):
            widget.setVisible(options.mode == "extend")
        for widget in (self.texture_label, self.texture):
            widget.setVisible(options.mode != "generate")  # a new image has no photo to lend
        # extend continues the photo along the model's layout: there is no classic extend
        hide_row(self.texture, self.texture.findData("classic"), options.mode == "extend")
        self.candidates.setEnabled(options.mode != "extend")  # the engine extends one at a time

    def _on_bundle(self, *_) -> None:
        bundle = self.editor.bundle
        conditional = bundle is not None and bundle.manifest.class_conditional
        # "Fill as class" exists only for class-conditional models
        hide_row(self.mode, MODES.index("class"), not conditional)
        if not conditional and self.editor.options.mode == "class":
            self.editor.set_options(replace(self.editor.options, mode="remove"))
        manifest = bundle.manifest if conditional else None
        self.classes.set_classes(
            manifest.class_names if manifest else None,
            manifest.class_synonyms if manifest else None,
        )
        self.classes.select(self.editor.options.class_name)
        options = self.editor.options
        if manifest is not None and options.class_name and not self.classes.chosen():
            options = replace(options, class_name="")  # a class of the previous model
        if manifest is not None and manifest.needs_class:
            # a class-only model cannot remove or generate "anything": offer its class modes
            mode = "class" if options.mode in ("remove", "extend") else options.mode
            options = replace(options, mode=mode, generate_class=True)
        if options != self.editor.options:
            self.editor.set_options(options)
        self._show_fields(self.editor.options)
        self._show_cost()

    def _show_class_hint(self, text: str) -> None:
        self.class_hint.setText(text)
        self.class_hint.setVisible(bool(text) and not self.classes.isHidden())

    def _show_runnable(self, options: EditOptions) -> None:
        bundle = self.editor.bundle
        self.run_button.setEnabled(
            bundle is not None and not options.class_missing(bundle.manifest)
        )

    def _show_cost(self, *_) -> None:
        plan, options = self.editor.plan, self.editor.options
        missing = self.editor.bundle and options.class_missing(self.editor.bundle.manifest)
        if self.editor.bundle is None:
            self.cost.setText(self.editor.models.error or "Loading the model...")
        elif missing:
            self.cost.setText(missing + ".")
        elif options.mode == "generate":
            self.cost.setText("Generates a whole new image.")
        elif options.mode == "extend":
            self.cost.setText(f"Adds {options.extend_cells} token(s) on the {options.extend_side}.")
        elif plan is None or plan.masked_count == 0:
            self.cost.setText("Paint over what to refill.")
        else:
            self.cost.setText(cost_text(plan))

    def _on_progress(self, step: Step) -> None:
        self.progress.setMaximum(step.total)
        self.progress.setValue(step.step)
        if step.phase == "texture":
            self.progress.setFormat("Adding the photo's texture...")
        else:
            self.progress.setFormat(f"Step {step.step}/{step.total}  ({step.remaining} left)")

    def _on_document(self) -> None:
        """Another image opened: the last run's "Done" was about the one before (a generated
        image keeps it: it is that run's result)."""
        if not self.editor.jobs.busy and self.editor.run is None:
            self.progress.setValue(0)
            self.progress.setFormat("Idle")

    def _on_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat("Encoding...")
        else:
            done = self.progress.value() >= self.progress.maximum() > 0
            self.progress.setFormat("Done" if done else "Idle")
            if not done:
                self.progress.setValue(0)


def cost_text(plan) -> str:
    """What a run will compute, in numbers that add up: each decoding step predicts every
    token still hidden, so the predictions are the sum of the per-step counts."""
    parts = plan.parts
    if len(parts) == 1:
        part = parts[0]
        counts = masked_counts(part.masked_count, part.steps, part.start_step)
        shown = (
            ", ".join(str(c) for c in counts)
            if len(counts) <= 4
            else f"{counts[0]} + {counts[1]} + ... + {counts[-1]}"
        )
        return (
            f"<b>{part.masked_count}</b> tokens regenerate in {len(counts)} steps; each step "
            f"predicts the tokens still hidden ({shown}): <b>{plan.cost}</b> token "
            "predictions"
        )
    return (
        f"<b>{plan.masked_count}</b> tokens in {len(parts)} separate squares, each decoded "
        f"in up to {plan.steps} steps; each step predicts the tokens still hidden: "
        f"<b>{plan.cost}</b> token predictions"
    )
