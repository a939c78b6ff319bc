"""Builds and wires the desktop application: settings, store, scheduler, Qt bridge, main window."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from wsidesk.core.errors import WsideskError  # noqa: E402
from wsidesk.core.profiles import DEFAULT_PROFILE, check_profile_name  # noqa: E402
from wsidesk.core.scheduler.executor_config import ExecutorConfig, make_executor  # noqa: E402
from wsidesk.core.store import Store  # noqa: E402

if TYPE_CHECKING:  # Qt types stay out of this module's import time
    from wsidesk.core.scheduler.executors import Executor
    from wsidesk.gui.main_window import MainWindow

logger = logging.getLogger(__name__)

DEMO_SLIDE = "demo.svs"
DEMO_WORKFLOW = "demo_workflow.yaml"
# Small enough that the demo's segmentation finishes in about a minute on a 2-core CPU (~25 tissue tiles);
# small batches show the first cells sooner on a CPU.
DEMO_SIZE = (3072, 2304)
DEMO_SEGMENT_PARAMS = {"tile_size": 512, "padding": 80, "batch_size": 2}


def demo_files(data_dir: Path, *, model: str) -> tuple[Path, Path]:
    """The first-start demo: a synthetic slide and a two-branch workflow on it (written once)."""
    from wsidesk.core.slide.demo import write_demo_slide

    folder = data_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    slide, workflow = folder / DEMO_SLIDE, folder / DEMO_WORKFLOW
    if not slide.exists():
        write_demo_slide(slide, width=DEMO_SIZE[0], height=DEMO_SIZE[1], mpp=0.5, seed=7)
    if not workflow.exists():
        from wsidesk.core.workflow.io import dump_workflow
        from wsidesk.core.workflow.model import Branch, Job, Workflow

        demo = Workflow(
            name="Demo — tissue and cells",
            branches=(
                Branch("tissue", (Job("tissue", "tissue", image=DEMO_SLIDE),)),
                Branch(
                    "cells",
                    (
                        Job("cells", "segment", image=DEMO_SLIDE, params={"model": model, **DEMO_SEGMENT_PARAMS}),
                        Job("table", "export", depends_on=("cells",), params={"format": "csv"}),
                    ),
                ),
            ),
        )
        header = "# A tissue branch and a cell segmentation branch on the demo slide, then a CSV export.\n"
        workflow.write_text(header + dump_workflow(demo), encoding="utf-8")
    return slide, workflow


def default_model(data_dir: Path) -> str:
    """brightfield_nuclei when installed; else the small bundled model (fine on the synthetic demo)."""
    from wsidesk.core.segment.models import ModelStore

    store = ModelStore(data_dir / "models")
    installed = {m.name for m in store.list() if m.installed}
    return "brightfield_nuclei" if "brightfield_nuclei" in installed else "wsidesk_test_nuclei"


def warm_up(models_dir: Path, model: str) -> threading.Thread:
    """Import the segmentation stack and load `model` on a background thread at start-up.

    Importing torch takes seconds, and loading a TorchScript model, importing OpenVINO and converting
    the model hold the GIL for 70-400 ms at a time: done inside the first job, they would freeze the GUI
    thread mid-run instead of at start-up. The model and its backbone land in the process caches that
    segment jobs use.
    """

    def _load() -> None:
        try:
            import torch

            import wsidesk.core.export.geojson  # noqa: F401
            import wsidesk.core.export.table  # noqa: F401
            import wsidesk.core.segment.extract  # noqa: F401
            import wsidesk.core.segment.merge  # noqa: F401 - shapely: ~40 modules
            import wsidesk.core.segment.shards  # noqa: F401
            from wsidesk.core.jobs.segment import openvino_cache
            from wsidesk.core.segment.backends import splittable
            from wsidesk.core.segment.engine import prepare_backbone
            from wsidesk.core.segment.models import ModelStore, cached_model, models_root

            # Leave a core to the GUI thread: with every core busy in inference, repaints stall.
            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
            root = models_root(models_dir)
            loaded = cached_model(ModelStore(root).resolve(model))
            if splittable(loaded.module):  # as a segment job with backend auto will run it
                prepare_backbone(loaded, cache_dir=openvino_cache(root))
        except ImportError:  # segmentation is optional; its jobs report the missing package
            logger.debug("segmentation stack not importable", exc_info=True)
        except WsideskError as exc:  # not installed or damaged: the job that needs it says so
            logger.info("model %s not preloaded: %s", model, exc)

    thread = threading.Thread(target=_load, name="wsidesk-warm-up", daemon=True)
    thread.start()
    return thread


DEFAULT_GUI_WORKERS = 2


def build_main_window(
    data_dir: Path,
    *,
    profile: str | None = None,
    workers: int | None = None,
    max_active_profiles: int = 3,
    executor: ExecutorConfig | None = None,
) -> MainWindow:
    """The main window and what it runs on; the caller owns the QApplication.

    Where jobs run comes from `executor` (`wsidesk gui --executor ...`: this session only, not saved), else
    the saved settings; `workers`, when given, wins.
    """
    from PySide6.QtCore import QSettings

    from wsidesk.core.scheduler.runner import Runner
    from wsidesk.gui.bridges import EventBridge, collect_on_gui_thread
    from wsidesk.gui.main_window import MainWindow, Services
    from wsidesk.gui.settings_dialog import ExecutorSettings

    collect_on_gui_thread()  # before any job thread runs Python next to this window's Qt objects
    store = Store(data_dir)
    settings = QSettings(str(data_dir / "gui.ini"), QSettings.Format.IniFormat)
    profile = check_profile_name(profile or str(settings.value("last_profile", DEFAULT_PROFILE)))
    chosen = ExecutorSettings.load(settings, workers=workers or DEFAULT_GUI_WORKERS)
    if executor is not None:
        chosen = replace(
            chosen, kind=executor.kind, scheduler_address=executor.scheduler_address, cluster_file=executor.cluster_file
        )
    if workers is not None:
        chosen = replace(chosen, workers=workers)
    jobs_executor, warning = _executor_for(chosen, data_dir)
    bridge = EventBridge()
    runner = Runner(store, jobs_executor, max_active_profiles=max_active_profiles, sink=bridge)
    services = Services(
        store, runner, jobs_executor, bridge, settings, executor_settings=chosen, executor_warning=warning
    )
    return MainWindow(services, profile=profile)


def _executor_for(chosen: ExecutorConfig, data_dir: Path) -> tuple[Executor, str | None]:
    """The executor `chosen` asks for, and a warning when it had to fall back to this computer.

    The GUI's local executor is its QThreadPool (results arrive on the GUI thread); a Dask cluster
    that cannot be reached must not keep the app from opening the slides on this computer.
    """
    from wsidesk.gui.bridges import QtExecutor

    workers = chosen.workers or DEFAULT_GUI_WORKERS
    if chosen.kind == "local":
        return QtExecutor(workers), None
    try:
        cluster = chosen.cluster_settings(data_dir)
        address = chosen.scheduler_address or cluster.scheduler_address
        # Without a scheduler, `workers` sizes the local cluster; with one, the cluster decides.
        config = ExecutorConfig("dask", address, workers=None if address else workers)
        executor = make_executor(config, cluster=cluster)
    except ImportError:
        why = "Dask is not installed (pip install 'wsidesk[cluster]')"
    except WsideskError as exc:
        why = str(exc)
    else:
        return executor, None
    warning = f"{why}; jobs run on this computer instead"
    logger.warning("%s", warning)
    return QtExecutor(workers), warning


def shutdown(window: MainWindow) -> None:
    """Stop dispatching, let running jobs reach a safe point (their runs stay resumable), close."""
    services = window.services
    services.runner.interrupt()
    services.executor.shutdown(wait=True)
    services.store.close()


def run_gui(
    paths: Sequence[Path],
    *,
    data_dir: Path,
    profile: str | None,
    workers: int | None,
    max_active_profiles: int,
    executor: ExecutorConfig | None = None,
) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("wsidesk")
    app.setOrganizationName("wsidesk")
    model = default_model(data_dir)
    warm_up(data_dir / "models", model)
    window = build_main_window(
        data_dir, profile=profile, workers=workers, max_active_profiles=max_active_profiles, executor=executor
    )
    files = [str(p) for p in paths]
    if not files and not window.store.slides(window.profiles.current):
        slide, workflow = demo_files(data_dir, model=model)
        files = [str(slide), str(workflow)]
        logger.info("first start: opening the demo slide %s and workflow %s", slide, workflow)
    window.show()
    if files:
        window.open_paths(files)
    try:
        return app.exec()
    finally:
        shutdown(window)
