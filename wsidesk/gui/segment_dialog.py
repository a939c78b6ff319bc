"""The Segment dialog: model, device, precision, tiling and batching for one slide, with a tile/time estimate.

Defaults suit the machine (`recommended_settings` for the device auto resolves to). The tile count comes
from a real tile plan (tissue detection on the slide's thumbnail), computed on a worker thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.errors import WsideskError
from wsidesk.core.jobs.segment import SegmentParams
from wsidesk.core.jobs.tissue import TilingParams
from wsidesk.core.segment.defaults import recommended_settings
from wsidesk.core.segment.estimate import ModelChoice, format_duration, seconds_per_tile

if TYPE_CHECKING:
    from wsidesk.core.tiling.grid import TilePlan

logger = logging.getLogger(__name__)

REPLAN_DELAY_MS = 250  # typing a tile size replans once, not per digit


def _plan(slide: Path, params: TilingParams, roi: str | None, profile_dir: Path | None) -> TilePlan:
    """The job's tile plan (inside the saved regions `roi` names, when given)."""
    from wsidesk.core.jobs.tissue import plan_from_reader
    from wsidesk.core.slide.reader import open_slide

    reader = open_slide(slide)
    try:
        regions = None
        if roi is not None:
            from wsidesk.core.annotations.regions import load_regions

            regions = load_regions(roi, slide=slide, slide_size=reader.dimensions, profile_dir=profile_dir)
        return plan_from_reader(reader, params, regions=regions)[0]
    finally:
        reader.close()


def detected_device() -> str:
    """What `device: auto` picks here (imports torch: the app warms it up at start); cpu without torch."""
    try:
        from wsidesk.core.segment.models.load import choose_device

        return choose_device("auto")
    except (ImportError, WsideskError):
        return "cpu"


class _PlanSignals(QObject):
    planned = Signal(int, int, int)  # request number, total tiles, tissue tiles
    failed = Signal(int, str)


class SegmentDialog(QDialog):
    """Settings for one `segment` job on `slide`; `params()` after `exec()` returns Accepted.

    `detected_device` is what `device: auto` resolves to on this machine (cpu, cuda or mps); `roi`, when
    given, names the regions to segment (passed as the job's `roi` param where the job type has one) and,
    with the profile folder holding them, the estimate plans only tissue inside them.
    """

    def __init__(
        self,
        slide: str | Path,
        models: Sequence[ModelChoice],
        *,
        detected_device: str = "cpu",
        roi: list[str] | None = None,
        profile_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if not models:
            msg = "no segmentation model is installed; run `wsidesk models install brightfield_nuclei`"
            raise WsideskError(msg)
        self.slide = Path(slide)
        self.models = list(models)
        self.detected_device = detected_device
        self.roi = list(roi) if roi else None
        self.profile_dir = profile_dir  # where the profile's saved regions are (to plan inside `roi`)
        where = f"{len(self.roi)} region{'s' if len(self.roi) != 1 else ''} of " if self.roi else ""
        self.setWindowTitle(f"Segment {'regions' if self.roi else 'slide'} — {self.slide.name}")
        specs = {spec.name: spec for spec in SegmentParams.specs()}
        self._has_backend = "backend" in specs
        self._has_roi = "roi" in specs

        self.model = QComboBox()
        for choice in self.models:
            self.model.addItem(choice.label, choice.name)
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        self.device = self._combo(specs["device"].choices, specs["device"].default)
        self.device.setItemText(0, f"auto ({detected_device} on this computer)")
        self.precision = self._combo(specs["precision"].choices, specs["precision"].default)
        self.backend = self._combo(specs["backend"].choices, specs["backend"].default) if self._has_backend else None
        self.tile_size = self._spin(specs["tile_size"].maximum, minimum=64, step=64, suffix=" px")
        self.padding = self._spin(1024, minimum=0, step=8, suffix=" px")
        self.batch_size = self._spin(specs["batch_size"].maximum, minimum=1, step=1)
        self.estimate = QLabel("Estimate: planning tiles on the slide's thumbnail…")
        self.estimate.setWordWrap(True)
        self.estimate.setObjectName("segment_estimate")

        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("", self.model_note)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        if self.backend is not None:
            form.addRow("Backend", self.backend)
        form.addRow("Tile size", self.tile_size)
        form.addRow("Padding", self.padding)
        form.addRow("Batch size", self.batch_size)
        heading = QLabel(f"Segment cells in {where}<b>{self.slide.name}</b>")
        if self.roi:
            heading.setToolTip(", ".join(self.roi))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Segment")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(self.estimate)
        layout.addWidget(buttons)
        self.setMinimumWidth(480)

        self._plans: dict[tuple[int, int, float], tuple[int, int]] = {}  # (tile, padding, mpp) -> counts
        self._request = 0
        self._signals = _PlanSignals(self)
        self._signals.planned.connect(self._on_planned, Qt.ConnectionType.QueuedConnection)
        self._signals.failed.connect(self._on_plan_failed, Qt.ConnectionType.QueuedConnection)
        self._replan = QTimer(self)
        self._replan.setSingleShot(True)
        self._replan.setInterval(REPLAN_DELAY_MS)
        self._replan.timeout.connect(self._plan)
        self.model.currentIndexChanged.connect(self._on_model_changed)
        self.device.currentIndexChanged.connect(self._apply_recommended)
        if self.backend is not None:
            self.backend.currentIndexChanged.connect(self._apply_recommended)
        self.precision.currentIndexChanged.connect(self._show_estimate)
        self.batch_size.valueChanged.connect(self._show_estimate)
        self.tile_size.valueChanged.connect(self._replan.start)
        self.padding.valueChanged.connect(self._replan.start)
        self._show_model_note()
        self._apply_recommended()  # and plans: once, at the recommended tile size

    # -- widgets ------------------------------------------------------------------------------------
    @staticmethod
    def _combo(choices: Sequence[str], default: str) -> QComboBox:
        combo = QComboBox()
        for choice in choices:
            combo.addItem(choice, choice)
        combo.setCurrentIndex(max(0, combo.findData(default)))
        return combo

    @staticmethod
    def _spin(maximum: float | None, *, minimum: int, step: int, suffix: str = "") -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(minimum, int(maximum) if maximum is not None else 100_000)
        spin.setSingleStep(step)
        spin.setSuffix(suffix)
        return spin

    # -- what the user chose ------------------------------------------------------------------------
    def model_choice(self) -> ModelChoice:
        return self.models[max(0, self.model.currentIndex())]

    def resolved_device(self) -> str:
        device = str(self.device.currentData())
        return self.detected_device if device == "auto" else device

    def backend_name(self) -> str:
        return str(self.backend.currentData()) if self.backend is not None else "torch"

    def params(self) -> dict[str, Any]:
        """The segment job's params, as the dialog shows them."""
        params: dict[str, Any] = {
            "model": self.model_choice().name,
            "device": str(self.device.currentData()),
            "precision": str(self.precision.currentData()),
            "tile_size": self.tile_size.value(),
            "padding": self.padding.value(),
            "batch_size": self.batch_size.value(),
        }
        if self.backend is not None:
            params["backend"] = self.backend_name()
        if self.roi and self._has_roi:
            params["roi"] = self._roi_param()
        return params

    def _roi_param(self) -> str:
        return ",".join(dict.fromkeys(self.roi or []))  # the param takes annotation names, comma-separated

    # -- reactions ----------------------------------------------------------------------------------
    @Slot()
    def _on_model_changed(self) -> None:
        self._show_model_note()
        self._plan()  # another model may read tiles at another resolution

    def _show_model_note(self) -> None:
        choice = self.model_choice()
        self.model_note.setText(
            "Trained on wsidesk's synthetic demo slides only: fast, but not for real tissue."
            if choice.bundled_test
            else f"Reads tiles at the model's {choice.pixel_size:g} µm/px."
        )
        self.model_note.setStyleSheet("color: #a05a00" if choice.bundled_test else "color: palette(mid)")

    @Slot()
    def _apply_recommended(self) -> None:
        """Tile, padding and batch size measured to suit the chosen device and backend."""
        backend = self.backend_name() if self.backend is not None else "torch"
        try:
            best = recommended_settings(self.resolved_device(), backend)
        except ValueError as exc:
            logger.warning("no recommended settings: %s", exc)
            return
        for spin, value in ((self.tile_size, best.tile_size), (self.padding, best.padding)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self.batch_size.setValue(best.batch_size)
        self._plan()

    def _plan_key(self) -> tuple[int, int, float]:
        return (self.tile_size.value(), self.padding.value(), self.model_choice().pixel_size)

    @Slot()
    def _plan(self) -> None:
        """Count tiles with a real plan at these settings, on a worker thread (cached per grid)."""
        key = self._plan_key()
        if key in self._plans:
            self._show_estimate()
            return
        self._request += 1
        request, signals, slide = self._request, self._signals, self.slide
        roi = self._roi_param() if self.profile_dir is not None else None
        self.estimate.setText("Estimate: planning tiles on the slide's thumbnail…")

        def work() -> None:
            tile, padding, mpp = key
            try:
                plan = _plan(
                    slide, TilingParams(tile_size=tile, padding=padding, target_mpp=mpp), roi, self.profile_dir
                )
            except (WsideskError, OSError, ValueError) as exc:
                result: tuple[Any, ...] = (signals.failed, request, str(exc))
            else:
                self._plans[key] = (plan.total, plan.tissue)
                result = (signals.planned, request, plan.total, plan.tissue)
            try:
                result[0].emit(*result[1:])
            except RuntimeError:  # the dialog was closed and deleted meanwhile
                logger.debug("tile estimate for %s arrived after its dialog closed", slide)

        threading.Thread(target=work, name="wsidesk-segment-estimate", daemon=True).start()

    @Slot(int, int, int)
    def _on_planned(self, _request: int, _total: int, _tissue: int) -> None:
        self._show_estimate()  # shows only when the plan is the one for the current settings

    @Slot(int, str)
    def _on_plan_failed(self, request: int, message: str) -> None:
        if request == self._request:
            self.estimate.setText(f"Estimate unavailable: {message}")

    @property
    def tile_counts(self) -> tuple[int, int] | None:
        """(total, tissue) tiles of the plan at the current settings, once planned."""
        return self._plans.get(self._plan_key())

    @Slot()
    def _show_estimate(self) -> None:
        counts = self.tile_counts
        if counts is None:
            return
        total, tissue = counts
        device = self.resolved_device()
        backend = self.backend_name()
        if backend == "auto":  # as the job decides: OpenVINO on a CPU when it is installed
            from wsidesk.core.segment.backends import openvino_available

            backend = "openvino" if device == "cpu" and openvino_available() else "torch"
        per_tile = seconds_per_tile(
            device=device,
            backend=backend,
            bundled_test=self.model_choice().bundled_test,
            tile_size=self.tile_size.value(),
            padding=self.padding.value(),
        )
        if self.roi:
            regions = " inside the regions" if self.profile_dir is not None else " (whole tissue, not only the regions)"
        else:
            regions = ""
        self.estimate.setText(
            f"Estimate: <b>{tissue:,} tissue tiles</b> of {total:,}{regions}, "
            f"<b>{format_duration(tissue * per_tile)}</b> on {device} ({backend}).<br>"
            "<small>An estimate from per-tile rates measured on a 2-core CPU and an H200 GPU; "
            "a busy computer or a slide dense with nuclei takes longer.</small>"
        )
