"""SlideView: level choice, tiles arriving, fit/zoom/pan, cursor mapping, drag and drop, teardown."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from wsidesk.core.slide.reader import ArrayReader
from wsidesk.gui.viewer import SlideView, level_for_scale
from wsidesk.gui.viewer.minimap import format_length, nice_scale_length


class CountingReader(ArrayReader):
    def __init__(self, image: np.ndarray, **kw: object) -> None:
        super().__init__(image, **kw)  # type: ignore[arg-type]
        self.thread_ids: set[int] = set()
        self._lock = threading.Lock()

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        with self._lock:
            self.thread_ids.add(threading.get_native_id())
        return super().read_region(x, y, level, width, height)


def _array_reader(w: int = 2048, h: int = 1536, levels: int = 3) -> CountingReader:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx % 256), (yy % 256), ((xx + yy) % 256)], axis=2).astype(np.uint8)
    return CountingReader(img, levels=levels, mpp=0.5, path=f"<array {w}x{h}>")


def _slide_on_screen(v: SlideView) -> QRectF:
    w, h = v.reader.dimensions
    return v.viewportTransform().mapRect(QRectF(0, 0, w, h))


def test_level_for_scale_picks_the_coarsest_level_that_is_not_upsampled(view):
    ds = (1.0, 2.0, 4.0)
    cases = {4.0: 0, 1.0: 0, 0.75: 0, 0.5: 1, 0.4: 1, 0.26: 1, 0.25: 2, 0.1: 2, 0.01: 2}
    for scale, level in cases.items():
        assert level_for_scale(ds, scale) == level, scale
    view.set_reader(_array_reader(levels=3))
    for scale, level in cases.items():
        assert view.level_for_scale(scale) == level, scale


def test_view_opens_the_demo_slide_and_gets_sharp_tiles(qtbot, view, demo_slide):
    opened: list[str] = []
    view.slide_opened.connect(opened.append)
    view.open_slide(demo_slide.path)
    assert opened == [str(demo_slide.path)]
    view.set_scale_factor(1.0)
    view.center_on(2048, 1536)
    keys = view.visible_tile_keys()
    assert keys and all(k.level == 0 for k in keys)
    qtbot.waitUntil(lambda: all(k in view.cache for k in view.visible_tile_keys()), timeout=10_000)
    # A cached tile shows the slide's pixels, not the placeholder.
    key = keys[0]
    x0, y0 = key.col * 512, key.row * 512
    expected = view.reader.read_region(x0 + 100, y0 + 100, 0, 1, 1)[0, 0]
    c = view.cache.peek(key).pixelColor(100, 100)
    assert (c.red(), c.green(), c.blue()) == tuple(int(v) for v in expected)


def test_zoom_to_fit_fits_and_centres_the_slide(view):
    view.set_reader(_array_reader(2048, 1024))
    view.zoom_in()
    view.zoom_to_fit()
    r = _slide_on_screen(view)
    vp = QRectF(view.viewport().rect())
    assert r.width() == pytest.approx(vp.width(), abs=1.5)  # 2:1 slide in a 4:3 view: width-bound
    assert r.height() <= vp.height() + 1
    assert r.center().x() == pytest.approx(vp.center().x(), abs=1.5)
    assert r.center().y() == pytest.approx(vp.center().y(), abs=1.5)


def test_fit_waits_for_a_viewport_when_opened_before_showing(qtbot):
    v = SlideView(loader_threads=1)
    qtbot.addWidget(v)
    v.set_reader(_array_reader(1024, 1024, levels=2))
    v.resize(400, 400)
    v.show()
    qtbot.waitExposed(v)
    assert v.scale_factor() == pytest.approx(400 / 1024, rel=0.01)
    v.close()


def test_zoom_is_clamped_between_half_fit_and_four_times(qtbot, view):
    view.set_reader(_array_reader())
    seen: list[float] = []
    view.zoom_changed.connect(seen.append)
    for _ in range(30):
        view.zoom_in()
    assert view.scale_factor() == pytest.approx(4.0)
    for _ in range(60):
        view.zoom_out()
    assert view.scale_factor() == pytest.approx(view.fit_scale() / 2)
    assert seen and seen[-1] == pytest.approx(view.scale_factor())


def test_wheel_zoom_keeps_the_point_under_the_mouse(view):
    view.set_reader(_array_reader())
    view.set_scale_factor(0.5)
    pos = QPointF(200, 150)
    before = view.map_to_level0(pos)
    wheel = QWheelEvent(
        pos,
        QPointF(view.viewport().mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.scale_factor() > 0.5
    after = view.map_to_level0(pos)
    assert after.x() == pytest.approx(before.x(), abs=2 / view.scale_factor())
    assert after.y() == pytest.approx(before.y(), abs=2 / view.scale_factor())


def test_keys_zoom_fit_and_pan(qtbot, view):
    view.set_reader(_array_reader())
    fit = view.scale_factor()
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.scale_factor() == pytest.approx(fit * 1.5)
    before = view.visible_scene_rect().center()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.visible_scene_rect().center().x() > before.x()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.visible_scene_rect().center().y() > before.y()
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.scale_factor() == pytest.approx(fit)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert view.scale_factor() == pytest.approx(fit)


def test_cursor_moved_reports_level0_pixels(qtbot, view):
    view.set_reader(_array_reader())
    view.set_scale_factor(2.0)
    view.center_on(1000, 700)
    centre = QPointF(view.viewport().width() / 2, view.viewport().height() / 2)
    offset = QPointF(100, -50)  # 100 screen px right at 2x = 50 level-0 px
    move = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        centre + offset,
        QPointF(view.viewport().mapToGlobal((centre + offset).toPoint())),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(view.cursor_moved, timeout=1000) as blocker:
        QApplication.sendEvent(view.viewport(), move)
    x, y = blocker.args
    assert x == pytest.approx(1050, abs=1.0)
    assert y == pytest.approx(675, abs=1.0)


def test_clicking_the_minimap_jumps_there(qtbot, view):
    view.set_reader(_array_reader())
    view.set_scale_factor(1.0)
    view.center_on(100, 100)
    r = view.minimap.rect(view.viewport().size())
    assert not r.isEmpty()
    target = QPointF(r.left() + 0.75 * r.width(), r.top() + 0.5 * r.height())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=target.toPoint())
    c = view.visible_scene_rect().center()
    assert c.x() == pytest.approx(0.75 * 2048, abs=2048 / r.width() * 2)
    assert c.y() == pytest.approx(0.5 * 1536, abs=1536 / r.height() * 2)


def test_scale_bar_uses_round_lengths():
    assert nice_scale_length(1.0, 160) == 100
    assert nice_scale_length(0.5, 160) == 50
    assert nice_scale_length(2.0, 160) == 200
    assert nice_scale_length(4.0, 160) == 500
    assert nice_scale_length(0.01, 160) == 1
    assert format_length(2000, "µm") == "2 mm"
    assert format_length(50, "µm") == "50 µm"


def _drag_events(view: SlideView, urls: list[QUrl]) -> tuple[QDragEnterEvent, QDropEvent]:
    mime = QMimeData()
    mime.setUrls(urls)
    pos = QPointF(50, 50)
    actions = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos.toPoint(), actions, mime, buttons, mods)
    move = QDragMoveEvent(pos.toPoint(), actions, mime, buttons, mods)
    drop = QDropEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(view.viewport(), enter)
    QApplication.sendEvent(view.viewport(), move)
    QApplication.sendEvent(view.viewport(), drop)
    return enter, drop


def test_dropping_a_local_file_emits_files_dropped(view, tmp_path):
    path = tmp_path / "slide one.svs"
    path.write_bytes(b"")
    got: list[list[str]] = []
    view.files_dropped.connect(got.append)
    enter, drop = _drag_events(view, [QUrl.fromLocalFile(str(path)), QUrl("https://example.org/a.svs")])
    assert enter.isAccepted()
    assert drop.isAccepted()
    assert got == [[str(path)]]


def test_dropping_a_non_file_url_is_ignored(view):
    got: list[list[str]] = []
    view.files_dropped.connect(got.append)
    enter, drop = _drag_events(view, [QUrl("https://example.org/slide.svs")])
    assert not enter.isAccepted()
    assert not drop.isAccepted()
    assert got == []


def test_opening_another_slide_closes_the_previous_one(qtbot, view):
    first = _array_reader(1024, 1024, levels=2)
    view.set_reader(first, owned=True)
    qtbot.waitUntil(lambda: all(k in view.cache for k in view.visible_tile_keys()), timeout=5000)
    closed: list[str] = []
    view.slide_closed.connect(closed.append)
    second = _array_reader(2048, 1024, levels=2)
    view.set_reader(second)
    assert closed == [first.path]
    assert first.level_dimensions == ()  # ArrayReader.close() drops its levels
    assert all(k.path != first.path for k in view.cache.keys())
    assert view.reader is second


def test_failed_tiles_are_reported_and_the_view_keeps_working(qtbot, view):
    class Broken(CountingReader):
        def read_region(self, x, y, level, width, height):  # noqa: ANN001, ANN201
            raise OSError("Not a JPEG file")

    img = np.full((600, 600, 3), 200, dtype=np.uint8)
    messages: list[str] = []
    view.tile_failed.connect(messages.append)
    view.set_reader(Broken(img, levels=1))
    qtbot.waitUntil(lambda: len(messages) >= 1, timeout=5000)
    assert "Not a JPEG file" in messages[0]
    assert not view.grab().isNull()


def test_closing_the_view_stops_loading_and_joins_loader_threads(qtbot):
    v = SlideView(loader_threads=2)
    qtbot.addWidget(v)
    v.resize(600, 400)
    v.show()
    qtbot.waitExposed(v)
    reader = _array_reader()
    v.set_reader(reader)
    loader = v.loader
    qtbot.waitUntil(lambda: len(reader.thread_ids) > 0, timeout=5000)
    v.close()
    assert v.loader is None and v.reader is None
    assert loader.is_shut_down
    if os.path.isdir("/proc/self/task"):
        qtbot.waitUntil(
            lambda: not any(os.path.exists(f"/proc/self/task/{t}") for t in reader.thread_ids),
            timeout=3000,
        )


def test_native_pinch_gesture_zooms_around_the_fingers(view):
    from PySide6.QtGui import QNativeGestureEvent, QPointingDevice

    view.set_reader(_array_reader())
    view.set_scale_factor(0.5)
    pos = QPointF(600, 200)
    before = view.map_to_level0(pos)
    event = QNativeGestureEvent(
        Qt.NativeGestureType.ZoomNativeGesture,
        QPointingDevice.primaryPointingDevice(),
        2,
        pos,
        pos,
        QPointF(view.viewport().mapToGlobal(pos.toPoint())),
        0.5,
        QPointF(0, 0),
    )
    QApplication.sendEvent(view.viewport(), event)
    assert view.scale_factor() == pytest.approx(0.75)
    after = view.map_to_level0(pos)
    assert after.x() == pytest.approx(before.x(), abs=2 / view.scale_factor())
    assert after.y() == pytest.approx(before.y(), abs=2 / view.scale_factor())


def test_a_slide_that_cannot_be_opened_leaves_the_current_one_showing(view, tmp_path):
    from wsidesk.core.errors import SlideError

    current = _array_reader(1024, 1024, levels=2)
    view.set_reader(current)
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"not a slide")
    with pytest.raises(SlideError):
        view.open_slide(bad)
    assert view.reader is current
    assert view.loader is not None


def _screen_rgb(v: SlideView, x: int, y: int) -> tuple[int, int, int]:
    shot = v.grab().toImage()
    c = shot.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def test_cached_background_shows_sharp_tiles_as_they_arrive_and_after_panning(qtbot, view):
    reader = _array_reader()
    view.set_reader(reader)
    view.set_scale_factor(1.0)
    view.center_on(700, 500)

    def on_screen_matches_slide() -> bool:
        for vx, vy in ((400, 300), (250, 200), (520, 380)):
            p = view.map_to_level0(QPointF(vx + 0.5, vy + 0.5))
            expected = reader.read_region(int(p.x()), int(p.y()), 0, 1, 1)[0, 0].astype(int)
            if max(abs(a - int(b)) for a, b in zip(_screen_rgb(view, vx, vy), expected, strict=True)) > 4:
                return False
        return True

    # The slide background is cached; each arriving tile must repaint its part of that cache.
    qtbot.waitUntil(on_screen_matches_slide, timeout=10_000)
    view.pan_by(300, 170)  # the cache is scrolled and the uncovered strip drawn
    qtbot.waitUntil(on_screen_matches_slide, timeout=10_000)
    view.zoom_by(1.5)  # a new scale redraws the whole cache
    view.zoom_by(1 / 1.5)
    qtbot.waitUntil(on_screen_matches_slide, timeout=10_000)
