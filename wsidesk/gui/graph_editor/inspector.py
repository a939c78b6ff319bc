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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.jobs.params import ParamSpec
from wsidesk.core.jobs.registry import JOB_TYPES, all_params
from wsidesk.gui.graph_editor.document import WorkflowDocument
from wsidesk.gui.graph_editor.model import check_job_id

_FLOAT_MAX = 1e6  # spin boxes need an upper bound; params without one take any size
_INVALID = "QLineEdit { border: 1px solid #d32f2f; background: #fdecea; }"
SLIDE_FILTER = (
    "Slides (*.svs *.tif *.tiff *.ndpi *.mrxs *.scn *.svslide *.bif *.vms *.vmu *.qptiff *.dcm);;All files (*)"
)


def mark_invalid(edit: QLineEdit, problem: str | None) -> None:
    edit.setStyleSheet(_INVALID if problem else "")
    edit.setToolTip(problem or "")
    edit.setProperty("invalid", bool(problem))


def common_default(name: str) -> Any | None:
    """What an unset workflow default falls back to: the jobs' default when every job type agrees."""
    defaults = {spec.default for t in JOB_TYPES.values() if (spec := t.spec(name)) is not None}
    return defaults.pop() if len(defaults) == 1 else None


def _set_range(spin: QSpinBox | QDoubleSpinBox, spec: ParamSpec) -> None:
    """The param's range; for a param decided at run time, one step below it stands for "unset" and
    reads e.g. "the model's"."""
    unset_text = spec.default_text if spec.default is None else ""
    spin.blockSignals(True)
    if isinstance(spin, QSpinBox):
        low = int(spec.minimum or 0) + (1 if spec.exclusive_minimum else 0) - (1 if unset_text else 0)
        spin.setRange(low, int(spec.maximum if spec.maximum is not None else 1_000_000))
    else:
        step = 10 ** -spin.decimals()
        low_f = (spec.minimum or 0.0) + (step if spec.exclusive_minimum else 0.0) - (step if unset_text else 0.0)
        spin.setRange(low_f, spec.maximum if spec.maximum is not None else _FLOAT_MAX)
    spin.setSpecialValueText(unset_text)
    spin.blockSignals(False)


class ParamRow:
    """One param: a 'set' checkbox and a value widget (from the job-type registry); unset params inherit."""

    def __init__(self, spec: ParamSpec, apply: Callable[[str, Any | None], bool]) -> None:
        self.spec = spec
        self.key = spec.name
        self._apply = apply
        self.checkbox = QCheckBox(spec.name)
        self._set_tooltip()
        self.edit: QLineEdit | None = None
        self.widget = self._make_widget()
        self.checkbox.toggled.connect(self._on_toggled)

    def use_spec(self, spec: ParamSpec) -> None:
        """Show the param as the selected job's type declares it (defaults can differ by type)."""
        if spec == self.spec:
            return
        self.spec = spec
        self._set_tooltip()
        if isinstance(self.widget, QSpinBox | QDoubleSpinBox):
            _set_range(self.widget, spec)

    def _set_tooltip(self) -> None:
        unit = f" ({self.spec.unit})" if self.spec.unit else ""
        self.checkbox.setToolTip(
            f"{self.spec.help}{unit}; unticked, it inherits the default ({self.spec.shown_default})"
        )

    def _make_widget(self) -> QWidget:
        spec = self.spec
        if spec.choices:
            combo = QComboBox()
            combo.addItems(spec.choices)
            combo.currentTextChanged.connect(self._on_value_changed)
            return combo
        if spec.type is bool:
            check = QCheckBox()
            check.toggled.connect(self._on_value_changed)
            return check
        if spec.type is str:
            if spec.names:  # names to pick from, or type (or browse for) a path
                names = QComboBox()
                names.setEditable(True)
                names.addItems(spec.names)
                names.activated.connect(self._on_value_changed)
                # Long names must not widen the whole panel.
                names.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                names.setMinimumContentsLength(8)
                field: QWidget = names
                line = names.lineEdit()
                assert line is not None  # an editable combo has one
                edit = line
            else:
                field = edit = QLineEdit()
            edit.setPlaceholderText(spec.help)
            edit.editingFinished.connect(self._on_value_changed)
            self.edit = edit
            if not spec.path:
                return field
            browse = QToolButton()
            browse.setText("…")
            browse.setToolTip(f"choose a file for {spec.name}")
            browse.clicked.connect(self._on_browse_clicked)
            box = QWidget()
            row = QHBoxLayout(box)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(field, 1)
            row.addWidget(browse)
            return box
        spin: QSpinBox | QDoubleSpinBox
        if spec.type is int:
            spin = QSpinBox()
            spin.setSingleStep(16 if spec.unit == "px" else 1)
        else:
            spin = QDoubleSpinBox()
            spin.setDecimals(3)
            spin.setSingleStep(0.05)
        _set_range(spin, spec)
        if spec.unit:
            spin.setSuffix(f" {spec.unit}" if spec.unit != "µm per pixel" else " µm/px")
        spin.setKeyboardTracking(False)  # one edit per value, not per keystroke
        spin.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        spin.valueChanged.connect(self._on_value_changed)
        return spin

    def choose_file(self) -> str:
        """Ask for a file for a path param; '' when cancelled. Tests replace this."""
        path, _ = QFileDialog.getOpenFileName(self.widget, f"Choose {self.key}")
        return path

    def _on_browse_clicked(self) -> None:
        path = self.choose_file()
        if path and self.edit is not None:
            self.edit.setText(path)
            if not self.checkbox.isChecked():
                self.checkbox.setChecked(True)  # applies the value
            else:
                self._on_value_changed()

    def value(self) -> Any:
        w = self.widget
        if isinstance(w, QComboBox):
            return w.currentText()
        if self.edit is not None:
            return self.edit.text().strip()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        assert isinstance(w, QSpinBox | QDoubleSpinBox)
        if w.specialValueText() and w.value() == w.minimum():
            return None  # the "unset" value
        return w.value()

    def _show(self, value: Any | None) -> None:
        w = self.widget
        w.blockSignals(True)
        try:
            if isinstance(w, QComboBox):
                w.setCurrentIndex(max(w.findText(str(value)), 0) if value is not None else 0)
            elif self.edit is not None:
                self.edit.setText("" if value is None else str(value))
                self.edit.setCursorPosition(0)  # a long path shows its start
                mark_invalid(self.edit, None)
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QSpinBox):
                w.setValue(int(value) if value is not None else w.minimum())
                if value is None and not w.specialValueText():
                    w.clear()  # empty box: nothing set and nothing to inherit
            elif isinstance(w, QDoubleSpinBox):
                if value is not None:
                    w.setValue(float(value))
                elif w.specialValueText():
                    w.setValue(w.minimum())  # reads e.g. "the model's"
                else:
                    w.clear()  # empty box: nothing set and nothing to inherit
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
        if value in ("", None) or (
            isinstance(self.widget, QSpinBox | QDoubleSpinBox) and self.widget.cleanText() == ""
        ):
            value = self.spec.starter
            if value in ("", None):
                return  # a path or name: wait for the user to type one
            self._show(value)
        if not self._apply(self.key, value):
            self.checkbox.setChecked(False)

    def _on_value_changed(self, *_: Any) -> None:
        if not self.checkbox.isChecked():
            return
        value = self.value()
        if self.edit is not None:
            if not value:
                mark_invalid(self.edit, f"{self.key} cannot be empty; untick to inherit")
                return
            mark_invalid(self.edit, None)
        elif value is None:
            return  # a spin box stepped down to its "unset" value: untick to inherit
        if not self._apply(self.key, value) and self.edit is not None:
            mark_invalid(self.edit, f"{self.key} {value!r} was refused")


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
        self.default_rows = {name: ParamRow(spec, self._apply_default) for name, spec in all_params().items()}
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
        self.type_combo.addItems(list(JOB_TYPES))
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
        self.param_rows = {name: ParamRow(spec, self._apply_param) for name, spec in all_params().items()}
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
            row.set_state(draft.defaults.get(key), common_default(key))

    def _refresh_job(self) -> None:
        draft = self.document.draft
        assert self._uid is not None
        job = draft.jobs[self._uid]
        self.stack.setCurrentIndex(1)
        self.title.setText(f"Job {job.job_id}")
        self.job_id_edit.setText(job.job_id)
        mark_invalid(self.job_id_edit, None)
        for combo, items, current in (
            (self.type_combo, list(JOB_TYPES), job.type),
            (self.branch_combo, [b.name for b in draft.branches], draft.branches[draft.lane_of(job.uid)].name),
        ):
            combo.blockSignals(True)
            if [combo.itemText(i) for i in range(combo.count())] != list(items):
                combo.clear()
                combo.addItems(list(items))
            combo.setCurrentText(current)
            combo.blockSignals(False)
        kind = JOB_TYPES[job.type]
        self.image_edit.setText(job.image or "")
        self.image_edit.setEnabled(kind.takes_image)
        self.browse_button.setEnabled(kind.takes_image)
        self.image_edit.setPlaceholderText(
            "slide path, relative to the workflow file" if kind.takes_image else f"{job.type} jobs take no image"
        )
        problems = draft.job_problems(job.uid)
        mark_invalid(self.image_edit, None)
        if "needs an image" in problems:
            mark_invalid(self.image_edit, f"{job.type} jobs need an image")
        deps = [draft.jobs[d].job_id for d in job.depends_on]
        self.depends_label.setText(", ".join(deps) if deps else "nothing (drag from a job's output port onto this one)")
        self.error_label.setText("\n".join(f"⚠ {p}" for p in problems))
        for key, row in self.param_rows.items():
            spec = kind.spec(key)
            row.set_visible(visible=spec is not None)
            if spec is not None:
                row.use_spec(spec)
                row.set_state(job.params.get(key), draft.defaults.get(key, spec.default))

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
