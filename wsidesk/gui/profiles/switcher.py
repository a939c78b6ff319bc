"""Toolbar widget listing profiles; add, remove and switch. Switching never stops other work."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QInputDialog, QLabel, QMessageBox, QToolButton, QWidget

from wsidesk.core.errors import WsideskError
from wsidesk.core.store import Store


class ProfileSwitcher(QWidget):
    profile_changed = Signal(str)

    def __init__(self, store: Store, current: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self.combo = QComboBox()
        self.combo.setMinimumWidth(140)
        self.combo.setToolTip("Profile: each sees only its own slides, workflows and results")
        add, remove = QToolButton(), QToolButton()
        add.setText("+")
        add.setToolTip("Add a profile")
        remove.setText("−")
        remove.setToolTip("Remove this profile (its files stay on disk)")
        add.clicked.connect(self._on_add_clicked)
        remove.clicked.connect(self._on_remove_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Profile:"))
        layout.addWidget(self.combo)
        layout.addWidget(add)
        layout.addWidget(remove)
        self._store.add_profile(current)
        self.reload(current)
        self.combo.currentTextChanged.connect(self._on_text_changed)

    @property
    def current(self) -> str:
        return self.combo.currentText()

    def reload(self, select: str | None = None) -> None:
        select = select or self.current
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(self._store.profiles())
        self.combo.setCurrentText(select)
        self.combo.blockSignals(False)

    def add_profile(self, name: str) -> None:
        """Create (if needed) and switch to `name`; raises WsideskError for an invalid name."""
        self._store.add_profile(name)
        self.reload(name)
        self.profile_changed.emit(name)

    def remove_profile(self, name: str) -> None:
        self._store.remove_profile(name)
        self.reload(self._store.profiles()[0])
        self.profile_changed.emit(self.current)

    @Slot(str)
    def _on_text_changed(self, name: str) -> None:
        if name:
            self.profile_changed.emit(name)

    @Slot()
    def _on_add_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Add profile", "Profile name (A-Z a-z 0-9 _ . -):")
        if ok and name:
            try:
                self.add_profile(name)
            except WsideskError as exc:
                QMessageBox.warning(self, "Cannot add profile", str(exc))

    @Slot()
    def _on_remove_clicked(self) -> None:
        name = self.current
        answer = QMessageBox.question(self, "Remove profile", f"Remove profile {name!r}? Its files stay on disk.")
        if answer == QMessageBox.StandardButton.Yes:
            try:
                self.remove_profile(name)
            except WsideskError as exc:
                QMessageBox.warning(self, "Cannot remove profile", str(exc))
