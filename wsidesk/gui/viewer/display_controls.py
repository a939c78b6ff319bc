"""A small panel of viewing controls: stain view, brightness, contrast, gamma."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from wsidesk.gui.viewer.display import STAINS, DisplaySettings, warm_up

# slider units: hundredths; (minimum, maximum) per control, chosen inside DisplaySettings' ranges
_RANGES = {"brightness": (-100, 100), "contrast": (10, 300), "gamma": (20, 300)}
SLIDER_DELAY_MS = 80  # a drag repaints once it pauses, not for every pixel of slider travel


class DisplayControls(QWidget):
    """Emits `display_changed(DisplaySettings)`; the stain combo applies at once, sliders after a pause."""

    display_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stain = QComboBox()
        for name, (label, _) in STAINS.items():
            self.stain.addItem(label, name)
        self.stain.setToolTip("Colour deconvolution (scikit-image's H&E-DAB stain matrices)")
        self.sliders: dict[str, QSlider] = {}
        self.values: dict[str, QLabel] = {}
        layout = QFormLayout(self)
        layout.addRow("Stain view", self.stain)
        defaults = DisplaySettings()
        for name, (lo, hi) in _RANGES.items():
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(lo, hi)
            slider.setValue(round(getattr(defaults, name) * 100))
            slider.setObjectName(f"display_{name}")
            value = QLabel()
            value.setMinimumWidth(36)
            self.sliders[name], self.values[name] = slider, value
            row = QWidget()
            row_layout = QHBoxLayout(row)
            row_layout.setContentsMargins(0, 0, 0, 0)
            row_layout.addWidget(slider, 1)
            row_layout.addWidget(value)
            layout.addRow(name.capitalize(), row)
            slider.valueChanged.connect(self._on_slider_moved)
        self.reset_button = QPushButton("Reset")
        self.reset_button.clicked.connect(self.reset)
        layout.addRow(self.reset_button)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SLIDER_DELAY_MS)
        self._timer.timeout.connect(self._emit)
        self.stain.currentIndexChanged.connect(lambda _: self._emit())
        self._show_values()
        warm_up()  # the first stain view must not wait for scikit-image to import

    def settings(self) -> DisplaySettings:
        values = {name: slider.value() / 100.0 for name, slider in self.sliders.items()}
        return DisplaySettings(stain=str(self.stain.currentData()), **values)

    def set_settings(self, settings: DisplaySettings) -> None:
        for name, slider in self.sliders.items():
            slider.blockSignals(True)
            slider.setValue(round(getattr(settings, name) * 100))
            slider.blockSignals(False)
        self.stain.blockSignals(True)
        self.stain.setCurrentIndex(self.stain.findData(settings.stain))
        self.stain.blockSignals(False)
        self._emit()

    @Slot()
    def reset(self) -> None:
        self.set_settings(DisplaySettings())

    @Slot()
    def _on_slider_moved(self) -> None:
        self._show_values()
        self._timer.start()

    def _show_values(self) -> None:
        for name, slider in self.sliders.items():
            sign = "+" if name == "brightness" else ""
            self.values[name].setText(f"{slider.value() / 100:{sign}.2f}")

    @Slot()
    def _emit(self) -> None:
        self._timer.stop()
        self._show_values()
        self.display_changed.emit(self.settings())
