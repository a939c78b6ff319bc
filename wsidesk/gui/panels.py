"""Side panels of the main window: the profile's slide library and results, and overlay layers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from wsidesk.gui.viewer import SlideView


class LibraryPanel(QWidget):
    """The current profile's slides, and the finished segmentations of the open slide."""

    slide_activated = Signal(str)
    result_activated = Signal(str)  # path of a cells.geojson
    add_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slides = QListWidget()
        self.slides.itemActivated.connect(lambda item: self.slide_activated.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.results = QListWidget()
        self.results.itemActivated.connect(lambda item: self.result_activated.emit(item.data(Qt.ItemDataRole.UserRole)))
        add = QPushButton("Add slides…")
        add.clicked.connect(self.add_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("<b>Slides</b> (drop files here or on the viewer)"))
        layout.addWidget(self.slides, 3)
        layout.addWidget(add)
        layout.addWidget(QLabel("<b>Results</b> for the open slide (double-click to show)"))
        layout.addWidget(self.results, 2)

    def set_slides(self, paths: list[Path], *, current: str | None = None) -> None:
        self.slides.clear()
        for path in paths:
            item = QListWidgetItem(path.name)
            item.setToolTip(str(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            if not path.exists():
                item.setText(f"{path.name} (missing)")
                item.setForeground(Qt.GlobalColor.gray)
            self.slides.addItem(item)
            if str(path) == current:
                self.slides.setCurrentItem(item)

    def slide_paths(self) -> list[str]:
        return [self.slides.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.slides.count())]

    def set_results(self, results: list[tuple[str, str]]) -> None:
        """`results`: (label, cells.geojson path), newest first."""
        self.results.clear()
        for label, path in results:
            item = QListWidgetItem(label)
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.results.addItem(item)


class LayersPanel(QWidget):
    """Visibility and opacity of the viewer's overlay layers; cell drawing mode."""

    def __init__(self, view: SlideView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view = view
        form = QFormLayout(self)
        form.setContentsMargins(6, 6, 6, 6)
        # Every overlay belongs to one (run, job): say which, so nothing on screen is anonymous.
        self.source_label = QLabel("No result shown")
        self.source_label.setWordWrap(True)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.source_label)
        self.visible: dict[str, QCheckBox] = {}
        self.opacity: dict[str, QSlider] = {}
        for name, label, opacity in (("tissue", "Tissue mask", 35), ("tiles", "Tile grid", 80), ("cells", "Cells", 90)):
            box = QCheckBox(label)
            box.setChecked(True)
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setValue(opacity)
            box.toggled.connect(lambda on, n=name: self._view.overlays[n].setVisible(on))
            slider.valueChanged.connect(lambda v, n=name: self._view.overlays[n].setOpacity(v / 100))
            view.overlays[name].setOpacity(opacity / 100)
            row = QHBoxLayout()
            row.addWidget(box)
            row.addWidget(slider, 1)
            form.addRow(row)
            self.visible[name], self.opacity[name] = box, slider
        self.mode = QComboBox()
        self.mode.addItems(["contour", "filled"])
        self.mode.currentTextChanged.connect(self._on_mode_changed)
        form.addRow("Cells drawn as", self.mode)

    @Slot(str)
    def set_source(self, text: str) -> None:
        self.source_label.setText(text)
        self.source_label.setToolTip(text)

    @Slot(str)
    def _on_mode_changed(self, mode: str) -> None:
        self._view.cell_overlay.set_mode(mode)
