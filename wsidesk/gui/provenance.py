"""Provenance of a run: per job its fingerprint and what it was made of; Re-run and Re-run with changes.

Also the library's offer to relink results of a slide that moved (found again by its content).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from wsidesk.core.errors import WsideskError
from wsidesk.core.store import Store
from wsidesk.gui.dashboard.run_dashboard import REUSED_COLOUR, STATE_COLOURS

logger = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


class ProvenancePanel(QWidget):
    """Shows `summary(run_id)` (the runner's summary with its per-job provenance) of the selected run."""

    rerun_requested = Signal(str, bool)  # run_id, edit before running

    def __init__(self, summary: Callable[[str], Mapping[str, Any]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._summary = summary
        self._run_id: str | None = None
        self._status = ""
        self.header = QLabel("Select a run or a job in Runs to see how its results were made")
        self.header.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(("What", "Value"))
        self.tree.setColumnWidth(0, 240)
        self.tree.setUniformRowHeights(True)
        self.rerun_button = QPushButton("Re-run")
        self.rerun_button.setToolTip("Open this run's workflow in the editor and run it again with the same params")
        self.rerun_edit_button = QPushButton("Re-run with changes…")
        self.rerun_edit_button.setToolTip("Open this run's workflow in the editor to change it before running")
        self.rerun_button.clicked.connect(lambda: self._on_rerun(edit=False))
        self.rerun_edit_button.clicked.connect(lambda: self._on_rerun(edit=True))
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.rerun_button)
        top.addWidget(self.rerun_edit_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self._update_buttons()

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @Slot(str, str)
    def show_run(self, run_id: str, job_id: str = "") -> None:
        try:
            summary = dict(self._summary(run_id))
        except WsideskError as exc:
            self._run_id, self._status = None, ""
            self.header.setText(str(exc))
            self.tree.clear()
            self._update_buttons()
            return
        self._run_id, self._status = run_id, str(summary.get("status", ""))
        jobs: Mapping[str, Any] = summary.get("jobs", {})
        reused = sum(1 for job in jobs.values() if (job.get("provenance") or {}).get("reused_from"))
        self.header.setText(
            f"<b>{summary.get('workflow')}</b> · run {run_id} · {self._status} · "
            f"{len(jobs)} jobs, {reused} reused from earlier runs"
        )
        self.tree.clear()
        for name, job in jobs.items():
            item = self._job_item(name, job)
            self.tree.addTopLevelItem(item)
            item.setExpanded(name == job_id or (not job_id and len(jobs) == 1))
        self._update_buttons()

    def _job_item(self, name: str, job: Mapping[str, Any]) -> QTreeWidgetItem:
        prov: Mapping[str, Any] = job.get("provenance") or {}
        reused = prov.get("reused_from")
        state = "reused" if reused and job.get("state") == "succeeded" else str(job.get("state"))
        item = QTreeWidgetItem((f"{job.get('branch')} / {name}", state))
        item.setForeground(1, QBrush(QColor(REUSED_COLOUR if state == "reused" else STATE_COLOURS.get(state, "#000"))))
        fingerprint = prov.get("fingerprint")
        _leaf(item, "fingerprint", fingerprint or f"none: {prov.get('not_cached_because') or 'not recorded'}")
        if reused:
            _leaf(item, "reused from", f"run {reused['run_id']}, job {reused['job_id']}")
        parts: Mapping[str, Any] = prov.get("parts") or {}
        if parts.get("results_version"):
            _leaf(item, "job type / results version", f"{parts.get('job_type')} / {parts['results_version']}")
        _branch(item, "params (after defaults)", parts.get("params"))
        model = parts.get("model")
        if model:
            _leaf(item, "model", f"{model.get('name')} {model.get('version')} · sha256 {model.get('sha256')}")
        slide = parts.get("slide")
        if slide:
            _leaf(item, "slide", f"{slide.get('path')} · {_size(slide.get('size'))}")
            _leaf(item, "slide fingerprint", str(slide.get("digest")))
        for key, value in (parts.get("files") or {}).items():
            _leaf(item, f"file {key}", f"{value.get('path')} · sha256 {value.get('sha256')}")
        _branch(item, "inputs (upstream fingerprints)", parts.get("upstream"))
        _branch(item, "engine (backend, device, precision used)", job.get("engine"))
        _leaf(item, "timings", _timings(job))
        _branch(item, "packages", prov.get("packages"))
        return item

    def _update_buttons(self) -> None:
        finished = self._run_id is not None and self._status in FINISHED
        self.rerun_button.setEnabled(finished)
        self.rerun_edit_button.setEnabled(finished)

    def _on_rerun(self, *, edit: bool) -> None:
        if self._run_id is not None:
            self.rerun_requested.emit(self._run_id, edit)


def _leaf(parent: QTreeWidgetItem, key: str, value: Any) -> QTreeWidgetItem:
    item = QTreeWidgetItem(parent, (key, str(value)))
    item.setToolTip(1, str(value))
    return item


def _branch(parent: QTreeWidgetItem, key: str, values: Mapping[str, Any] | None) -> None:
    if not values:
        return
    item = _leaf(parent, key, f"{len(values)} entries")
    for name, value in values.items():
        _leaf(item, name, "default (unset)" if value is None else value)


def _size(n: Any) -> str:
    return f"{int(n) / 1e9:.2f} GB" if isinstance(n, int) and n >= 1e8 else f"{int(n or 0) / 1e6:.1f} MB"


def _timings(job: Mapping[str, Any]) -> str:
    started, finished = job.get("started"), job.get("finished")
    if not started:
        return "not started"
    text = datetime.datetime.fromtimestamp(float(started)).strftime("%Y-%m-%d %H:%M:%S")
    if finished:
        text += f" · {float(finished) - float(started):.2f} s"
    return text


def offer_relink(parent: QWidget, store: Store, profile: str, slide: str) -> int:
    """Results made on this slide's content at another path: ask to relink them; how many were."""
    from wsidesk.core.cache import ResultCache
    from wsidesk.core.cache.moved import moved_results, relink_results

    path = Path(slide)
    if store.segmentations(profile, path):
        return 0  # its results are already listed under this path
    try:
        cache = ResultCache(store.layout.root / "cache")
    except WsideskError as exc:
        logger.warning("%s", exc)
        return 0
    try:
        # Fingerprinting costs a read of the slide's tile tables: only when some result's slide is gone.
        if not any(not Path(p).exists() for p in cache.slide_paths(profile)):
            return 0
        found = moved_results(store, cache, profile, path)
        if not found:
            return 0
        old = sorted({r.old_path for r in found})
        answer = QMessageBox.question(
            parent,
            "Results of a moved slide",
            f"{len(found)} result(s) were made on this slide's content at {', '.join(old)}.\n\nRelink them to {path}?",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return 0
        return len(relink_results(store, cache, profile, path))
    except WsideskError as exc:
        logger.warning("cannot look for results of moved slide %s: %s", path, exc)
        return 0
    finally:
        cache.close()


__all__ = ["ProvenancePanel", "offer_relink"]
