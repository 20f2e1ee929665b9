"""ResultsPanel: the candidates of the last run (click to apply), the step scrubber, the
confidence heatmap and "re-roll the k least confident tokens"."""

from __future__ import annotations

from dataclasses import replace

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.editor import Editor
from app.inspector import RunInspector
from app.runs import RunResult, edited_thumbnail
from app.ui.qimage import qimage_from_rgb

# thumbnails drawn inside this box: a one-part square at 72 px, a row of parts up to 128 wide
ICON = QSize(128, 72)
SCROLLBAR = 14  # room for the list's own scroll bar when candidates overflow its width


class ResultsPanel(QWidget):
    heatmap_available = Signal(bool)  # the heatmap can be shown (a finished, inspectable run)

    def __init__(self, editor: Editor, inspector: RunInspector, parent=None):
        super().__init__(parent)
        self.editor, self.inspector = editor, inspector
        # one compact row: the candidates, and beside them the step, heatmap and re-roll
        # controls (a 720-pixel-high window keeps most of its height for the image)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        self.candidates = QListWidget()
        self.candidates.setViewMode(QListView.ViewMode.IconMode)
        self.candidates.setFlow(QListView.Flow.LeftToRight)
        self.candidates.setWrapping(False)
        self.candidates.setIconSize(ICON)
        self.candidates.setMovement(QListView.Movement.Static)
        self.candidates.setSpacing(2)
        self.candidates.setFixedHeight(ICON.height() + self.fontMetrics().height() + 14 + SCROLLBAR)
        self.candidates.setToolTip("Click a candidate to put it in the image")
        row.addWidget(self.candidates, 1)
        controls = QVBoxLayout()
        controls.setSpacing(2)
        controls.addLayout(self._build_scrubber())
        controls.addLayout(self._build_tools())
        controls.addStretch(1)
        row.addLayout(controls, 1)
        self.candidates.itemClicked.connect(
            lambda item: editor.apply_candidate(self.candidates.row(item))
        )
        editor.run_changed.connect(self.show_run)
        editor.applied_changed.connect(self._on_applied)
        editor.busy_changed.connect(self._on_busy)  # bound: dropped with the panel
        inspector.step_shown.connect(self._on_step_shown)
        self.show_run(None)

    def _build_scrubber(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Step"))
        self.scrubber = QSlider(Qt.Orientation.Horizontal)
        self.scrubber.setToolTip("Replay the decode: drag to see what was decided at each step")
        self.scrubber.valueChanged.connect(lambda v: self.inspector.show_step(v - 1))
        self.step_label = QLabel("-")
        self.step_label.setMinimumWidth(48)
        row.addWidget(self.scrubber, 1)
        row.addWidget(self.step_label)
        return row

    def _build_tools(self) -> QVBoxLayout:
        row = QHBoxLayout()
        self.heatmap = QCheckBox("Confidence heatmap")
        self.heatmap.setToolTip("Red cells: tokens the model was least sure of (H)")
        self.heatmap.toggled.connect(self.inspector.set_heatmap)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(10, 100)
        self.opacity.setValue(round(self.inspector.heatmap_opacity * 100))
        self.heatmap.toggled.connect(self.opacity.setEnabled)
        self.opacity.setToolTip("Opacity of the confidence heatmap")
        self.opacity.setFixedWidth(90)
        self.opacity.setEnabled(False)
        self.opacity.valueChanged.connect(lambda v: self.inspector.set_heatmap_opacity(v / 100))
        self.reroll_count = QSpinBox(minimum=1, maximum=256, value=self.editor.options.reroll_count)
        self.reroll_count.setToolTip("How many of the least confident tokens to decode again")
        self.reroll_count.valueChanged.connect(
            lambda v: self.editor.set_options(replace(self.editor.options, reroll_count=v))
        )
        self.reroll = QPushButton(qta.icon("mdi6.dice-multiple-outline"), "Re-roll least sure")
        self.reroll.setToolTip(
            "Decode again the k tokens the model was least confident of, keeping the rest"
        )
        self.reroll.clicked.connect(lambda: self.editor.reroll(self.reroll_count.value()))
        row.addWidget(self.heatmap)
        row.addWidget(self.opacity)
        row.addStretch(1)
        reroll_row = QHBoxLayout()
        reroll_row.addStretch(1)
        reroll_row.addWidget(self.reroll_count)
        reroll_row.addWidget(self.reroll)
        column = QVBoxLayout()
        column.addLayout(row)
        column.addLayout(reroll_row)
        return column

    def set_heatmap(self, on: bool) -> None:
        """Show or hide the heatmap (the H key and View menu); only when there is a run."""
        self.heatmap.setChecked(bool(on) and self.heatmap.isEnabled())

    def show_run(self, run: RunResult | None) -> None:
        self.candidates.clear()
        if run is not None:
            for candidate in run.candidates:
                thumb = edited_thumbnail(candidate.patch, run.plan)
                icon = QIcon(QPixmap.fromImage(qimage_from_rgb(thumb)))
                item = QListWidgetItem(icon, f"seed {candidate.seed}")
                item.setToolTip(f"Seed {candidate.seed}: click to apply")
                self.candidates.addItem(item)
        steps = self.inspector.steps
        self.scrubber.blockSignals(True)
        self.scrubber.setRange(1, max(steps, 1))
        self.scrubber.setValue(max(steps, 1))
        self.scrubber.blockSignals(False)
        self.step_label.setText(f"{steps}/{steps}" if steps else "-")
        self._enable(not self.editor.jobs.busy)
        # no room kept for candidates before there are any
        self.candidates.setVisible(run is not None)
        self.setMaximumHeight(self.sizeHint().height() + 8)

    def _on_busy(self, busy: bool) -> None:
        self._enable(not busy)

    def _enable(self, idle: bool) -> None:
        inspectable = idle and self.inspector.can_inspect()
        self.scrubber.setEnabled(inspectable)
        self.heatmap.setEnabled(inspectable)
        self.heatmap_available.emit(inspectable)
        run = self.editor.run
        can_reroll = idle and run is not None and run.fill is not None
        self.reroll.setEnabled(can_reroll)
        self.reroll_count.setEnabled(can_reroll)
        self.candidates.setEnabled(idle)

    def _on_applied(self, index: int) -> None:
        self.candidates.blockSignals(True)
        self.candidates.setCurrentRow(index)
        self.candidates.blockSignals(False)

    def _on_step_shown(self, step: int) -> None:
        steps = self.inspector.steps
        shown = steps if step < 0 else step + 1
        self.step_label.setText(f"{shown}/{steps}")
