"""Where the app runs jobs: this computer or a Dask cluster, kept in the app's settings file.

The executor is built once at start-up (jobs in flight cannot move), so a change applies at the
next start; `wsidesk gui --executor ... --scheduler-address ...` overrides it for one session.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.scheduler.executor_config import ExecutorConfig
from wsidesk.core.scheduler.executors import EXECUTOR_KINDS

KIND_LABELS = {"local": "This computer (threads)", "dask": "A Dask cluster"}


@dataclass(frozen=True, slots=True)
class ExecutorSettings(ExecutorConfig):
    """The `ExecutorConfig` the app keeps in its settings file (keys `executor/*`); no fields of its own."""

    @classmethod
    def load(cls, settings: QSettings, *, workers: int | None) -> ExecutorSettings:
        """The saved settings; anything unreadable falls back to the default (a hand-edited file)."""
        try:
            return cls(
                kind=str(settings.value("executor/kind", "local")),
                scheduler_address=str(settings.value("executor/scheduler_address", "") or ""),
                workers=int(settings.value("executor/workers", workers)),  # type: ignore[call-overload]
            )
        except (TypeError, ValueError):
            return cls(workers=workers)

    def save(self, settings: QSettings) -> None:
        settings.setValue("executor/kind", self.kind)
        settings.setValue("executor/scheduler_address", self.scheduler_address or "")
        settings.setValue("executor/workers", self.workers)


class SettingsDialog(QDialog):
    """Edits where jobs run; `settings()` is the result after `accept`."""

    def __init__(self, current: ExecutorConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.kind = QComboBox()
        for kind in EXECUTOR_KINDS:
            self.kind.addItem(KIND_LABELS.get(kind, kind), kind)
        self.kind.setCurrentIndex(max(0, self.kind.findData(current.kind)))
        self.address = QLineEdit(current.scheduler_address or "")
        self.address.setPlaceholderText("tcp://host:8786 — empty: a local cluster on 127.0.0.1")
        self.workers = QSpinBox()
        self.workers.setRange(1, 256)
        self.workers.setValue(current.workers or 2)
        form = QFormLayout()
        form.addRow("Run jobs on", self.kind)
        form.addRow("Dask scheduler", self.address)
        form.addRow("Jobs at a time (this computer)", self.workers)
        note = QLabel(
            "TLS certificates for a remote scheduler go in <i>cluster.yaml</i> in the data folder.<br>"
            "Changes apply the next time wsidesk starts; running jobs are not moved."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.kind.currentIndexChanged.connect(self._on_kind_changed)
        self._on_kind_changed()

    def _on_kind_changed(self) -> None:
        self.address.setEnabled(self.kind.currentData() == "dask")

    def settings(self) -> ExecutorSettings:
        return ExecutorSettings(
            kind=str(self.kind.currentData()),
            scheduler_address=self.address.text().strip(),
            workers=self.workers.value(),
        )
