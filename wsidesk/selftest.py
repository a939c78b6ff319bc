"""`wsidesk selftest`: does this install (or packaged build) work on this machine?

One check per part a packaged build can lose: Qt (a real main window shown and closed, with a usable
font), OpenSlide (a demo slide written and read back), torch and its device, the model, and one tile
segmented by the engine. Each prints one line, `ok` or `FAILED: <reason>`; the exit code is 0 when
all pass, 1 otherwise. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from wsidesk import __version__

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_SELFTEST_MODEL = "wsidesk_test_nuclei"
CHECKS = ("qt", "slide", "torch", "model", "segment")
SLIDE_SIZE = (1024, 768)  # small enough to write in well under a second, big enough for a tissue tile
TILE_SIZE, PADDING = 256, 32


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: `status` is "ok", "failed" or "skipped" (a check it needs failed)."""

    name: str
    status: str
    seconds: float
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Skip(Exception):
    pass


@dataclass(slots=True)
class _State:
    """What one check hands to the next (the slide path, the loaded model)."""

    tmp: Path
    model_name: str
    device: str
    models_dir: Path
    slide: Path | None = None
    model: Any = None


def environment() -> dict[str, Any]:
    """Where this wsidesk runs: version, frozen or not, Python, platform."""
    frozen = bool(getattr(sys, "frozen", False))
    return {
        "wsidesk": __version__,
        "frozen": frozen,
        "location": str(Path(sys.executable).resolve().parent if frozen else Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def _headless_qt() -> None:
    """Offscreen Qt where there is no display (a server, CI): the window is still created and painted."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")


# Debian/Ubuntu packages of the system libraries a bundle most often misses, by the name the loader reports.
DEBIAN_PACKAGES = {
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libwayland-cursor.so.0": "libwayland-cursor0",
}


def missing_library_hint(message: str) -> str | None:
    """'<lib>: cannot open shared object file' -> which system library is missing and how to install it."""
    match = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", message)
    if not match:
        return None
    lib = match.group(1)
    package = DEBIAN_PACKAGES.get(lib)
    how = f"Debian/Ubuntu: apt-get install {package}" if package else "install the package that provides it"
    return f"the system library {lib} is missing ({how}; README, 'Packaged executable', lists them all)"


def _check_qt_platform_plugin() -> None:
    """Qt aborts the process when its platform plugin cannot load: load the xcb plugin first to get the reason."""
    platform_name = os.environ.get("QT_QPA_PLATFORM", "")
    wayland = os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland"
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY") or wayland:
        return
    if platform_name and not platform_name.startswith("xcb"):
        return
    import ctypes

    from PySide6.QtCore import QLibraryInfo

    plugin = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        msg = f"Qt's X11 platform plugin is not in the bundle ({plugin})"
        raise RuntimeError(msg)
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY)
    except OSError as exc:
        missing = _unresolved_libraries(plugin)  # the loader names only the first one
        if missing:
            packages = " ".join(DEBIAN_PACKAGES.get(lib, lib) for lib in missing)
            why = (
                f"system libraries missing: {', '.join(missing)} (Debian/Ubuntu: apt-get install {packages}; "
                "README, 'Packaged executable', lists them all)"
            )
        else:
            why = missing_library_hint(str(exc)) or str(exc)
        msg = f"Qt cannot use the X11 display {os.environ['DISPLAY']}: {why}"
        raise RuntimeError(msg) from exc


def _unresolved_libraries(path: Path) -> list[str]:
    """Libraries `ldd` cannot find for `path` (empty when ldd is not there)."""
    import shutil
    import subprocess

    ldd = shutil.which("ldd")
    if not ldd:
        return []
    try:
        out = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line})


def check_qt(state: _State) -> str:
    _headless_qt()
    import PySide6
    from PySide6.QtCore import qVersion

    _check_qt_platform_plugin()
    from PySide6.QtGui import QFontInfo
    from PySide6.QtWidgets import QApplication

    from wsidesk.app import build_main_window, shutdown

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["wsidesk-selftest"])
    family = QFontInfo(app.font()).family()
    if not family:
        msg = (
            "Qt found no usable font, so text would render as empty boxes; install one "
            "(Debian/Ubuntu: apt-get install fonts-dejavu-core libfontconfig1)"
        )
        raise RuntimeError(msg)
    window = build_main_window(state.tmp / "qt-data", workers=1)
    try:
        window.resize(1024, 700)
        window.show()
        for _ in range(5):
            app.processEvents()
        image = window.grab().toImage()
        if image.isNull() or image.width() < 100:
            msg = f"the main window did not paint (grabbed {image.width()}x{image.height()} px)"
            raise RuntimeError(msg)
        size = f"{image.width()}x{image.height()}"
    finally:
        window.close()
        shutdown(window)
        app.processEvents()
    return (
        f"PySide6 {PySide6.__version__} (Qt {qVersion()}), platform {app.platformName()}, "
        f"font {family!r}, main window {size} shown and closed"
    )


def check_slide(state: _State) -> str:
    import openslide

    from wsidesk.core.slide.demo import write_demo_slide
    from wsidesk.core.slide.reader import open_slide

    path = state.tmp / "selftest.svs"
    width, height = SLIDE_SIZE
    truth = write_demo_slide(path, width=width, height=height, mpp=0.5, seed=3)
    reader = open_slide(path)
    try:
        vendor = reader.properties.get("openslide.vendor", "?") if hasattr(reader, "properties") else "?"
        region = reader.read_region(0, 0, 0, 64, 64)
        if region.shape != (64, 64, 3):
            msg = f"read_region returned shape {region.shape}, expected (64, 64, 3)"
            raise RuntimeError(msg)
        levels = len(reader.level_dimensions)
    finally:
        reader.close()
    state.slide = path
    return (
        f"OpenSlide {openslide.__library_version__} (openslide-python {openslide.__version__}): "
        f"demo slide {width}x{height} px, vendor {vendor}, {levels} level{'s' * (levels != 1)}, "
        f"{truth.n_nuclei} nuclei drawn"
    )


def check_torch(state: _State) -> str:
    import torch

    from wsidesk.core.segment.models import choose_device

    device = choose_device(state.device)
    state.device = device
    extra = ""
    if device.startswith("cuda"):
        extra = f" ({torch.cuda.get_device_name(torch.device(device))})"
    from wsidesk.core.segment.backends import cpu_has_native_bf16, openvino_available

    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    openvino = "OpenVINO not installed"
    if openvino_available():
        from wsidesk.core.segment.backends.openvino import import_openvino

        ov = import_openvino()
        openvino = f"OpenVINO {ov.__version__.split('-', 1)[0]} on {', '.join(ov.Core().available_devices)}"
    return (
        f"torch {torch.__version__}, device {device}{extra}, {torch.get_num_threads()} CPU threads ({bf16}); {openvino}"
    )


def check_model(state: _State) -> str:
    from wsidesk.core.segment.models import ModelStore, load_model

    path = ModelStore(state.models_dir, allow_network=False).resolve(state.model_name)
    model = load_model(path, device=state.device)
    state.model = model
    return f"{model.name} from {path} ({path.stat().st_size / 1e6:.1f} MB, {model.pixel_size} µm/px) on {model.device}"


def check_segment(state: _State) -> str:
    if state.slide is None:
        raise _Skip("needs the slide check")
    if state.model is None:
        raise _Skip("needs the model check")
    from dataclasses import replace

    from wsidesk.core.segment.engine import segment_slide
    from wsidesk.core.segment.normalise import SlideNormaliser
    from wsidesk.core.slide.reader import open_slide
    from wsidesk.core.tiling.grid import plan_tiles
    from wsidesk.core.tiling.tissue import detect_tissue

    slide = state.slide
    model = state.model
    reader = open_slide(slide)
    try:
        plan = plan_tiles(reader, tile_size=TILE_SIZE, padding=PADDING, target_mpp=model.pixel_size)
        thumbnail = reader.thumbnail(256)
    finally:
        reader.close()
    if not plan.tissue_tiles:
        msg = "the demo slide has no tissue tile to segment"
        raise RuntimeError(msg)
    best = max(plan.tissue_tiles, key=lambda t: t.tissue)
    one = replace(plan, tiles=tuple(t if t.index == best.index else replace(t, state="skipped") for t in plan.tiles))
    normaliser = SlideNormaliser.from_image(thumbnail, detect_tissue(thumbnail))
    results = []
    for backend in _backends(model.device):
        with warnings.catch_warnings():
            # InstanSeg's post-processing uses sparse CSR tensors: torch warns about their beta state on every run
            warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support", category=UserWarning)
            report = segment_slide(
                lambda: open_slide(slide),
                one,
                model,
                normaliser,
                batch_size=1,
                precision="auto",
                read_workers=1,
                postprocess_workers=1,
                backend=backend,
                cache_dir=state.tmp / "openvino",
            )
        if report.backend != backend:  # a packaged OpenVINO that cannot run is a broken bundle, not a fallback
            msg = f"the {backend} backend did not run (fell back to {report.backend}); see the log for why"
            raise RuntimeError(msg)
        if report.tiles_failed:
            index, reason = next(iter(report.tiles_failed.items()))
            msg = f"{backend}: tile {index} failed: {reason}"
            raise RuntimeError(msg)
        if report.cells <= 0:
            msg = f"{backend} found no cells on a demo tile full of nuclei (tile {best.index}); model or engine broken"
            raise RuntimeError(msg)
        results.append(f"{report.cells} cells with {backend} on {report.device} {report.precision}")
    return f"{'; '.join(results)} (one {TILE_SIZE}px tile +{PADDING}px padding, precision auto)"


def _backends(device: str) -> list[str]:
    """torch, and OpenVINO when it is installed and the device is a CPU (where auto would pick it)."""
    from wsidesk.core.segment.backends import openvino_available

    return ["torch", "openvino"] if device == "cpu" and openvino_available() else ["torch"]


_FUNCTIONS: dict[str, Callable[[_State], str]] = {
    "qt": check_qt,
    "slide": check_slide,
    "torch": check_torch,
    "model": check_model,
    "segment": check_segment,
}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    hint = missing_library_hint(text) if isinstance(exc, ImportError | OSError) else None
    if hint:
        return f"{hint} ({type(exc).__name__}: {text})"
    if isinstance(exc, ImportError):
        return f"cannot import {exc.name or text} ({type(exc).__name__}: {text}); the install or bundle is incomplete"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def run_checks(
    *,
    models_dir: Path,
    model: str = DEFAULT_SELFTEST_MODEL,
    device: str = "auto",
    skip: Sequence[str] = (),
    on_result: Callable[[CheckResult], None] | None = None,
    verbose: bool = False,
) -> list[CheckResult]:
    """Run every check (in CHECKS order) in a temporary folder; never raises for a failed check."""
    results: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="wsidesk-selftest-") as tmp:
        state = _State(tmp=Path(tmp), model_name=model, device=device, models_dir=models_dir)
        for name in CHECKS:
            t0 = time.perf_counter()
            if name in skip:
                result = CheckResult(name, "skipped", 0.0, "skipped on request")
            else:
                try:
                    detail = _FUNCTIONS[name](state)
                    result = CheckResult(name, "ok", time.perf_counter() - t0, detail)
                except _Skip as exc:
                    result = CheckResult(name, "skipped", time.perf_counter() - t0, str(exc))
                except Exception as exc:  # noqa: BLE001 - a failed check is a report line, not a crash
                    if verbose:
                        traceback.print_exc(file=sys.stderr)
                    result = CheckResult(name, "failed", time.perf_counter() - t0, _reason(exc))
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def format_result(result: CheckResult) -> str:
    status = {"ok": "ok", "failed": "FAILED:", "skipped": "skipped:"}[result.status]
    return f"{result.name:<8} {result.seconds:6.2f}s  {status} {result.detail}"


def selftest(
    *,
    models_dir: Path,
    model: str = DEFAULT_SELFTEST_MODEL,
    device: str = "auto",
    skip: Sequence[str] = (),
    as_json: bool = False,
    verbose: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Run the checks, print one line each (or a JSON report) on `out`; 0 when all pass, else 1."""
    out = out or sys.stdout
    env = environment()
    t0 = time.perf_counter()
    if not as_json:
        where = "packaged build" if env["frozen"] else "installed package"
        print(
            f"wsidesk {env['wsidesk']} selftest: {where} at {env['location']} "
            f"(Python {env['python']}, {env['platform']})",
            file=out,
            flush=True,
        )

    def show(result: CheckResult) -> None:
        if not as_json:
            print(format_result(result), file=out, flush=True)

    results = run_checks(models_dir=models_dir, model=model, device=device, skip=skip, on_result=show, verbose=verbose)
    wall = time.perf_counter() - t0
    failed = [r.name for r in results if r.status == "failed" or (r.status == "skipped" and r.name not in skip)]
    ok = not failed
    if as_json:
        doc = {
            **env,
            "ok": ok,
            "seconds": round(wall, 3),
            "checks": [{**asdict(r), "seconds": round(r.seconds, 3)} for r in results],
        }
        json.dump(doc, out, indent=2)
        out.write("\n")
    elif ok:
        passed = sum(r.ok for r in results)
        print(f"selftest passed: {passed} checks ok in {wall:.1f}s", file=out)
    else:
        print(f"selftest FAILED ({', '.join(failed)}) in {wall:.1f}s; see the lines above", file=out)
    out.flush()
    return EXIT_OK if ok else EXIT_FAILED
