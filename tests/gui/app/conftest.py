"""The main window as the app tests open it: a fresh data folder, shown, message boxes answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from PySide6.QtWidgets import QMessageBox

from wsidesk.app import build_main_window, shutdown
from wsidesk.gui.main_window import MainWindow


@pytest.fixture
def open_window(qtbot, tmp_path, monkeypatch) -> Iterator[Callable[..., MainWindow]]:
    """`open_window(workers=2, size=(1200, 800))`: a shown main window, closed and shut down after the test.

    No message box blocks: questions are answered Yes; information and warnings are kept, in order, in
    the window's `messages` for the test to check.
    """
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: shown.append(a[2]))
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    opened: list[MainWindow] = []

    def open_(*, workers: int = 2, size: tuple[int, int] = (1200, 800)) -> MainWindow:
        win = build_main_window(tmp_path / "data", workers=workers)
        win.messages = shown  # type: ignore[attr-defined]
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        opened.append(win)
        return win

    yield open_
    for win in opened:
        win.close()
        shutdown(win)
