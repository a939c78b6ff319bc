"""Slide metadata panel: vendor, dimensions, levels, µm/px, objective power, associated images, properties."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QScrollArea,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.errors import SlideError
from wsidesk.core.slide.protocol import SlideReader, objective_power
from wsidesk.gui.viewer.tile_loader import rgb_to_qimage

logger = logging.getLogger(__name__)

ASSOCIATED_SIZE = 180  # px, longer side of an associated image's thumbnail


def _mpp_text(reader: SlideReader) -> str:
    return f"{reader.mpp:.4g} µm/px" if reader.mpp else "not recorded"


class SlideInfoPanel(QWidget):
    """What the open slide's file says about itself. `set_reader(None)` empties it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        for name in ("File", "Vendor", "Dimensions", "Pixel size", "Objective", "Levels"):
            label = QLabel()
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.fields[name] = label
            form.addRow(f"{name}:", label)
        self.levels = QTreeWidget()
        self.levels.setHeaderLabels(["level", "size (px)", "downsample"])
        self.levels.setRootIsDecorated(False)
        self.levels.setMaximumHeight(130)
        self.images_box = QGroupBox("Associated images")
        self.images = QGridLayout(self.images_box)
        self.properties = QTreeWidget()
        self.properties.setHeaderLabels(["property", "value"])
        self.properties.setRootIsDecorated(False)
        self.properties.setAlternatingRowColors(True)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addLayout(form)
        layout.addWidget(self.levels)
        layout.addWidget(self.images_box)
        layout.addWidget(QLabel("All properties:"))
        layout.addWidget(self.properties, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.set_reader(None)

    def set_reader(self, reader: SlideReader | None) -> None:
        for label in self.fields.values():
            label.clear()
        self.levels.clear()
        self.properties.clear()
        while self.images.count():
            item = self.images.takeAt(0)
            if item is not None and (widget := item.widget()) is not None:
                widget.setParent(None)  # off screen now, not at the next turn of the event loop
                widget.deleteLater()
        if reader is None:
            self.fields["File"].setText("no slide open")
            self.images_box.setVisible(False)
            return
        w, h = reader.dimensions
        power = objective_power(reader)
        self.fields["File"].setText(Path(reader.path).name)
        self.fields["File"].setToolTip(reader.path)
        self.fields["Vendor"].setText(reader.vendor or "unknown")
        self.fields["Dimensions"].setText(f"{w:,} × {h:,} px" + self._size_um(reader))
        self.fields["Pixel size"].setText(_mpp_text(reader))
        self.fields["Objective"].setText(f"{power:g}×" if power else "not recorded")
        self.fields["Levels"].setText(str(len(reader.level_dimensions)))
        for level, ((lw, lh), ds) in enumerate(zip(reader.level_dimensions, reader.level_downsamples, strict=True)):
            self.levels.addTopLevelItem(QTreeWidgetItem([str(level), f"{lw:,} × {lh:,}", f"{ds:.4g}"]))
        self._show_associated(reader)
        props = getattr(reader, "properties", {}) or {}
        for key in sorted(props):
            self.properties.addTopLevelItem(QTreeWidgetItem([key, str(props[key])]))
        self.properties.resizeColumnToContents(0)

    @staticmethod
    def _size_um(reader: SlideReader) -> str:
        if not reader.mpp:
            return ""
        w, h = reader.dimensions
        return f"  ({w * reader.mpp / 1000:.2f} × {h * reader.mpp / 1000:.2f} mm)"

    def _show_associated(self, reader: SlideReader) -> None:
        names: tuple[str, ...] = getattr(reader, "associated_images", ())
        self.images_box.setVisible(True)
        if not names:
            self.images.addWidget(QLabel("none in this file"), 0, 0)
            return
        for column, name in enumerate(names):
            picture = QLabel()
            picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
            try:
                rgb = reader.read_associated(name)  # type: ignore[attr-defined]
            except SlideError as exc:
                logger.warning("%s", exc)
                picture.setText("cannot be read")
                picture.setToolTip(str(exc))
            else:
                pixmap = QPixmap.fromImage(rgb_to_qimage(rgb))
                picture.setPixmap(
                    pixmap.scaled(
                        ASSOCIATED_SIZE,
                        ASSOCIATED_SIZE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                )
                picture.setToolTip(f"{name}: {rgb.shape[1]} × {rgb.shape[0]} px")
            caption = QLabel(name)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            picture.setObjectName(f"associated_{name}")
            self.images.addWidget(picture, 0, column)
            self.images.addWidget(caption, 1, column)
