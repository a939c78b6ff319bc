"""InspectorPanel: edits the selected job, or the workflow's name and defaults."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.segment.engine import PRECISIONS
from wsidesk.core.workflow import EXPORT_FORMATS, JOB_TYPES, PARAM_TYPES
from wsidesk.gui.graph_editor.document import WorkflowDocument
from wsidesk.gui.graph_editor.model import ALL_PARAMS, DEVICES, check_job_id

# Shown (greyed) for params nobody set; what the CLI and jobs fall back to.
FALLBACKS: dict[str, Any] = {"tile_size": 512, "padding": 80, "batch_size": 16, "device": "auto", "format": "geojson"}
# Initial value when a param is switched on and there is nothing to inherit.
STARTERS: dict[str, Any] = {**FALLBACKS, "target_mpp": 0.5, "mpp": 0.5, "min_tissue": 0.1, "model": ""}
_INT_RANGES = {"tile_size": (16, 16384), "padding": (0, 4096), "batch_size": (1, 4096)}
_FLOAT_RANGES = {"target_mpp": (0.01, 100.0), "mpp": (0.01, 100.0), "min_tissue": (0.0, 1.0)}
_INVALID = "QLineEdit { border: 1px solid #d32f2f; background: #fdecea; }"
SLIDE_FILTER = (
    "Slides (*.svs *.tif *.tiff *.ndpi *.mrxs *.scn *.svslide *.bif *.vms *.vmu *.qptiff *.dcm);;All files (*)"
)


def mark_invalid(edit: QLineEdit, problem: str | None) -> None:
    edit.setStyleSheet(_INVALID if problem else "")
    edit.setToolTip(problem or "")
    edit.setProperty("invalid", bool(problem))


class ParamRow:
    """One param: a 'set' checkbox and a value widget; unset params inherit a default."""

    def __init__(self, key: str, apply: Callable[[str, Any | None], bool]) -> None:
        self.key = key
        self._apply = apply
        self.checkbox = QCheckBox(key)
        self.checkbox.setToolTip(f"set {key} here; unticked, it inherits the default")
        self.widget = self._make_widget()
        self.checkbox.toggled.connect(self._on_toggled)

    def _make_widget(self) -> QWidget:
        kind = ALL_PARAMS[self.key]
        choices = {"format": EXPORT_FORMATS, "device": DEVICES, "precision": PRECISIONS}.get(self.key)
        if choices is not None:
            combo = QComboBox()
            combo.addItems(choices)
            combo.currentTextChanged.connect(self._on_value_changed)
            return combo
        if kind is str:
            edit = QLineEdit()
            edit.setPlaceholderText("pretrained model name or path")
            edit.editingFinished.connect(self._on_value_changed)
            return edit
        if kind is int:
            spin = QSpinBox()
            spin.setRange(*_INT_RANGES.get(self.key, (0, 1_000_000)))
            spin.setSingleStep(16 if self.key in ("tile_size", "padding") else 1)
        else:
            spin = QDoubleSpinBox()
            spin.setRange(*_FLOAT_RANGES.get(self.key, (0.0, 1e6)))
            spin.setDecimals(3)
            spin.setSingleStep(0.05)
        spin.setKeyboardTracking(False)  # one edit per value, not per keystroke
        spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        spin.valueChanged.connect(self._on_value_changed)
        return spin

    def value(self) -> Any:
        w = self.widget
        if isinstance(w, QComboBox):
            return w.currentText()
        if isinstance(w, QLineEdit):
            return w.text().strip()
        return w.value()

    def _show(self, value: Any | None) -> None:
        w = self.widget
        w.blockSignals(True)
        try:
            if isinstance(w, QComboBox):
                w.setCurrentIndex(max(w.findText(str(value)), 0) if value is not None else 0)
            elif isinstance(w, QLineEdit):
                w.setText("" if value is None else str(value))
                mark_invalid(w, None)
            elif value is None:
                w.clear()  # empty box: nothing set and nothing to inherit
            else:
                w.setValue(value)
        finally:
            w.blockSignals(False)

    def set_state(self, value: Any | None, fallback: Any | None) -> None:
        """Show `value` (set) or `fallback` greyed out (None: inherited)."""
        self.checkbox.blockSignals(True)
        self.checkbox.setChecked(value is not None)
        self.checkbox.blockSignals(False)
        self.widget.setEnabled(value is not None)
        self._show(value if value is not None else fallback)
        inherit = "nothing set" if fallback is None else f"inherits {fallback}"
        self.widget.setToolTip("" if value is not None else inherit)

    def set_visible(self, *, visible: bool) -> None:
        self.checkbox.setVisible(visible)
        self.widget.setVisible(visible)

    def _on_toggled(self, checked: bool) -> None:  # noqa: FBT001 - Qt signal argument
        self.widget.setEnabled(checked)
        if not checked:
            self._apply(self.key, None)
            return
        value = self.value()
        if value in ("", None) or (not isinstance(self.widget, QComboBox | QLineEdit) and self.widget.text() == ""):
            value = STARTERS.get(self.key)
            if value in ("", None):
                return  # model: wait for the user to type one
            self._show(value)
        if not self._apply(self.key, value):
            self.checkbox.setChecked(False)

    def _on_value_changed(self, *_: Any) -> None:
        if not self.checkbox.isChecked():
            return
        value = self.value()
        if isinstance(self.widget, QLineEdit):
            if not value:
                mark_invalid(self.widget, f"{self.key} cannot be empty; untick to inherit")
                return
            mark_invalid(self.widget, None)
        if not self._apply(self.key, value) and isinstance(self.widget, QLineEdit):
            mark_invalid(self.widget, f"{self.key} {value!r} was refused")


class InspectorPanel(QWidget):
    """Shows and edits one job, or the workflow when no job (or several) is selected."""

    def __init__(self, document: WorkflowDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._uid: int | None = None
        self._last_refusal = ""
        self.setMinimumWidth(280)

        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_workflow_page())
        self.stack.addWidget(self._build_job_page())
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.stack)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: 600; font-size: 11pt; padding: 6px 8px;")
        layout.addWidget(self.title)
        layout.addWidget(scroll)

        document.changed.connect(self._on_document_changed)
        document.edit_refused.connect(self._on_edit_refused)
        self.refresh()

    # ---- pages ------------------------------------------------------------------------------

    def _build_workflow_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.textEdited.connect(self._on_name_edited)
        self.name_edit.editingFinished.connect(self._on_name_finished)
        self.profile_label = QLabel()
        self.summary_label = QLabel()
        self.summary_label.setStyleSheet("color: #607080;")
        form.addRow("Name", self.name_edit)
        form.addRow("Profile", self.profile_label)
        form.addRow("", self.summary_label)
        self.default_rows = {k: ParamRow(k, self._apply_default) for k in ALL_PARAMS}
        box = self._param_box("Defaults (every job)", self.default_rows)
        v = QVBoxLayout(page)
        v.addLayout(form)
        v.addWidget(box)
        hint = QLabel(
            "Select a job to edit it. Drag from a job's right port to another job to "
            "make it wait; Del removes the selection."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #607080;")
        v.addWidget(hint)
        v.addStretch(1)
        return page

    def _build_job_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout()
        self.job_id_edit = QLineEdit()
        self.job_id_edit.setMaxLength(64)
        self.job_id_edit.textEdited.connect(self._on_job_id_edited)
        self.job_id_edit.editingFinished.connect(self._on_job_id_finished)
        self.type_combo = QComboBox()
        self.type_combo.addItems(JOB_TYPES)
        self.type_combo.currentTextChanged.connect(self._on_type_changed)
        self.branch_combo = QComboBox()
        self.branch_combo.setToolTip("move the job to the end of another branch")
        self.branch_combo.currentTextChanged.connect(self._on_branch_changed)
        self.image_edit = QLineEdit()
        self.image_edit.setPlaceholderText("slide path, relative to the workflow file")
        self.image_edit.editingFinished.connect(self._on_image_finished)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._on_browse_clicked)
        image_row = QHBoxLayout()
        image_row.addWidget(self.image_edit, 1)
        image_row.addWidget(self.browse_button)
        self.depends_label = QLabel()
        self.depends_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        form.addRow("Job id", self.job_id_edit)
        form.addRow("Type", self.type_combo)
        form.addRow("Branch", self.branch_combo)
        form.addRow("Image", image_row)
        form.addRow("Depends on", self.depends_label)
        self.param_rows = {k: ParamRow(k, self._apply_param) for k in ALL_PARAMS}
        box = self._param_box("Parameters", self.param_rows)
        v = QVBoxLayout(page)
        v.addLayout(form)
        v.addWidget(self.error_label)
        v.addWidget(box)
        v.addStretch(1)
        return page

    @staticmethod
    def _param_box(title: str, rows: dict[str, ParamRow]) -> QGroupBox:
        box = QGroupBox(title)
        grid = QGridLayout(box)
        grid.setColumnStretch(1, 1)
        for i, row in enumerate(rows.values()):
            grid.addWidget(row.checkbox, i, 0)
            grid.addWidget(row.widget, i, 1)
        return box

    # ---- showing ----------------------------------------------------------------------------

    @property
    def job_uid(self) -> int | None:
        return self._uid

    def show_job(self, uid: int | None) -> None:
        """Edit job `uid`, or the workflow when None."""
        self._uid = uid
        self.refresh()

    def _on_document_changed(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        draft = self.document.draft
        if self._uid is not None and self._uid not in draft.jobs:
            self._uid = None
        if self._uid is None:
            self._refresh_workflow()
        else:
            self._refresh_job()

    def _refresh_workflow(self) -> None:
        draft = self.document.draft
        self.stack.setCurrentIndex(0)
        self.title.setText("Workflow")
        self.name_edit.setText(draft.name)
        mark_invalid(self.name_edit, None)
        self.profile_label.setText(draft.profile or "(the profile it is run under)")
        self.summary_label.setText(f"{len(draft.branches)} branches · {len(draft.jobs)} jobs")
        for key, row in self.default_rows.items():
            row.set_state(draft.defaults.get(key), FALLBACKS.get(key))

    def _refresh_job(self) -> None:
        draft = self.document.draft
        job = draft.jobs[self._uid]
        self.stack.setCurrentIndex(1)
        self.title.setText(f"Job {job.job_id}")
        self.job_id_edit.setText(job.job_id)
        mark_invalid(self.job_id_edit, None)
        for combo, items, current in (
            (self.type_combo, JOB_TYPES, job.type),
            (self.branch_combo, [b.name for b in draft.branches], draft.branches[draft.lane_of(job.uid)].name),
        ):
            combo.blockSignals(True)
            if [combo.itemText(i) for i in range(combo.count())] != list(items):
                combo.clear()
                combo.addItems(list(items))
            combo.setCurrentText(current)
            combo.blockSignals(False)
        export = job.type == "export"
        self.image_edit.setText(job.image or "")
        self.image_edit.setEnabled(not export)
        self.browse_button.setEnabled(not export)
        self.image_edit.setPlaceholderText(
            "export jobs take no image" if export else "slide path, relative to the workflow file"
        )
        problems = draft.job_problems(job.uid)
        mark_invalid(self.image_edit, None)
        if "needs an image" in problems:
            mark_invalid(self.image_edit, f"{job.type} jobs need an image")
        deps = [draft.jobs[d].job_id for d in job.depends_on]
        self.depends_label.setText(", ".join(deps) if deps else "nothing (drag from a job's output port onto this one)")
        self.error_label.setText("\n".join(f"⚠ {p}" for p in problems))
        allowed = PARAM_TYPES[job.type]
        for key, row in self.param_rows.items():
            row.set_visible(visible=key in allowed)
            row.set_state(job.params.get(key), draft.defaults.get(key, FALLBACKS.get(key)))

    # ---- applying edits ---------------------------------------------------------------------

    def _on_edit_refused(self, reason: str) -> None:
        self._last_refusal = reason

    def _refused(self, ok: bool) -> str | None:  # noqa: FBT001
        return None if ok else (self._last_refusal or "refused")

    def _apply_param(self, key: str, value: Any | None) -> bool:
        if self._uid is None:
            return False
        return self.document.edit_job(self._uid, f"param:{key}", value)

    def _apply_default(self, key: str, value: Any | None) -> bool:
        return self.document.edit_workflow(f"default:{key}", value)

    def _job_id_problem(self, text: str) -> str | None:
        why = check_job_id(text)
        if why:
            return why
        for other in self.document.draft.jobs.values():
            if other.uid != self._uid and other.job_id.casefold() == text.casefold():
                return f"{text!r} is already used by another job"
        return None

    def _on_job_id_edited(self, text: str) -> None:
        mark_invalid(self.job_id_edit, self._job_id_problem(text))

    def _on_job_id_finished(self) -> None:
        if self._uid is None:
            return
        text = self.job_id_edit.text()
        if text == self.document.draft.jobs[self._uid].job_id:
            mark_invalid(self.job_id_edit, None)
            return
        problem = self._job_id_problem(text)
        if problem is None:
            problem = self._refused(self.document.edit_job(self._uid, "job_id", text))
        # Refused ids stay in the box, red, so the user can fix them.
        if problem:
            self.job_id_edit.setText(text)
        mark_invalid(self.job_id_edit, problem)

    def _on_name_edited(self, text: str) -> None:
        mark_invalid(self.name_edit, None if text.strip() else "the workflow needs a name")

    def _on_name_finished(self) -> None:
        text = self.name_edit.text()
        if text == self.document.draft.name:
            return
        problem = (
            "the workflow needs a name"
            if not text.strip()
            else self._refused(self.document.edit_workflow("name", text))
        )
        if problem:
            self.name_edit.setText(text)
        mark_invalid(self.name_edit, problem)

    def _on_type_changed(self, job_type: str) -> None:
        if self._uid is not None and job_type:
            self.document.edit_job(self._uid, "type", job_type)

    def _on_branch_changed(self, branch: str) -> None:
        if self._uid is not None and branch and not self.document.move_to_branch(self._uid, branch):
            self.refresh()

    def _on_image_finished(self) -> None:
        if self._uid is None:
            return
        text = self.image_edit.text().strip()
        if text == (self.document.draft.jobs[self._uid].image or ""):
            return
        self.set_image(text)

    def set_image(self, image: str) -> bool:
        """Apply an image path (relative to the workflow's folder when it lies inside it)."""
        if self._uid is None:
            return False
        problem = self._refused(self.document.edit_job(self._uid, "image", image or None))
        if problem:
            self.image_edit.setText(image)
        mark_invalid(self.image_edit, problem)
        return problem is None

    def choose_image_file(self) -> str:
        """Ask for a slide file; '' when cancelled. Tests replace this."""
        base = self.document.draft.base_dir
        path, _ = QFileDialog.getOpenFileName(self, "Choose slide image", str(base) if base else "", SLIDE_FILTER)
        return path

    def _on_browse_clicked(self) -> None:
        path = self.choose_image_file()
        if not path:
            return
        base = self.document.draft.base_dir
        image = path
        if base is not None:
            try:
                image = Path(os.path.relpath(path, base)).as_posix()
            except ValueError:  # another drive on Windows
                image = path
        self.image_edit.setText(image)
        self.set_image(image)


__all__ = ["InspectorPanel", "ParamRow"]
