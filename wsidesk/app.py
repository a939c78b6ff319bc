"""Builds and wires the desktop application: settings, store, scheduler, Qt bridge, main window."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from wsidesk.core.profiles import DEFAULT_PROFILE, check_profile_name  # noqa: E402
from wsidesk.core.store import Store  # noqa: E402

logger = logging.getLogger(__name__)

DEMO_SLIDE = "demo.svs"
DEMO_WORKFLOW = "demo_workflow.yaml"


def demo_files(data_dir: Path, *, model: str) -> tuple[Path, Path]:
    """The first-start demo: a synthetic slide and a two-branch workflow on it (written once)."""
    from wsidesk.core.slide.demo import write_demo_slide

    folder = data_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    slide, workflow = folder / DEMO_SLIDE, folder / DEMO_WORKFLOW
    if not slide.exists():
        write_demo_slide(slide, width=8192, height=6144, mpp=0.5, seed=7)
    if not workflow.exists():
        workflow.write_text(
            "# A tissue branch and a cell segmentation branch on the demo slide, then a CSV export.\n"
            "name: Demo — tissue and cells\n"
            "dag:\n"
            "  tissue:\n"
            f"    - {{job_id: tissue, type: tissue, image: {DEMO_SLIDE}}}\n"
            "  cells:\n"
            f"    - {{job_id: cells, type: segment, image: {DEMO_SLIDE}, params: {{model: {model}}}}}\n"
            "    - {job_id: table, type: export, depends_on: [cells], params: {format: csv}}\n",
            encoding="utf-8",
        )
    return slide, workflow


def default_model(data_dir: Path) -> str:
    """brightfield_nuclei when installed; else the small bundled model (fine on the synthetic demo)."""
    from wsidesk.core.segment.models import ModelStore

    store = ModelStore(data_dir / "models")
    installed = {m.name for m in store.list() if m.installed}
    return "brightfield_nuclei" if "brightfield_nuclei" in installed else "wsidesk_test_nuclei"


def warm_up_imports() -> None:
    """Import the segmentation stack on a background thread at start-up.

    Importing torch takes seconds and holds the GIL in long stretches: done inside the first job,
    it would freeze the GUI thread mid-run instead of at start-up.
    """
    import threading

    def _import() -> None:
        try:
            import wsidesk.core.jobs.segment  # noqa: F401
            import wsidesk.core.segment.engine  # noqa: F401
            import wsidesk.core.segment.extract  # noqa: F401
            import torch

            # Leave a core to the GUI thread: with every core busy in inference, repaints stall.
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        except ImportError:  # segmentation is optional; its jobs report the missing package
            logger.debug("segmentation stack not importable", exc_info=True)

    threading.Thread(target=_import, name="wsidesk-warm-up", daemon=True).start()


def build_main_window(
    data_dir: Path, *, profile: str | None = None, workers: int = 2, max_active_profiles: int = 3
):  # noqa: ANN201 - Qt types stay out of this module's import time
    """The main window and what it runs on; the caller owns the QApplication."""
    from PySide6.QtCore import QSettings

    from wsidesk.core.scheduler.runner import Runner
    from wsidesk.gui.bridges import EventBridge, QtExecutor
    from wsidesk.gui.main_window import MainWindow, Services

    store = Store(data_dir)
    settings = QSettings(str(data_dir / "gui.ini"), QSettings.Format.IniFormat)
    profile = check_profile_name(profile or str(settings.value("last_profile", DEFAULT_PROFILE)))
    bridge = EventBridge()
    executor = QtExecutor(workers)
    runner = Runner(store, executor, max_active_profiles=max_active_profiles, sink=bridge)
    return MainWindow(Services(store, runner, executor, bridge, settings), profile=profile)


def shutdown(window) -> None:  # noqa: ANN001
    """Stop dispatching, let running jobs reach a safe point (their runs stay resumable), close."""
    services = window.services
    services.runner.interrupt()
    services.executor.shutdown(wait=True)
    services.store.close()


def run_gui(
    paths: Sequence[Path], *, data_dir: Path, profile: str | None, workers: int, max_active_profiles: int
) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("wsidesk")
    app.setOrganizationName("wsidesk")
    warm_up_imports()
    window = build_main_window(data_dir, profile=profile, workers=workers, max_active_profiles=max_active_profiles)
    files = [str(p) for p in paths]
    if not files and not window.store.slides(window.profiles.current):
        slide, workflow = demo_files(data_dir, model=default_model(data_dir))
        files = [str(slide), str(workflow)]
        logger.info("first start: opening the demo slide %s and workflow %s", slide, workflow)
    window.show()
    if files:
        window.open_paths(files)
    try:
        return app.exec()
    finally:
        shutdown(window)
