"""Regions in the main window: kept per profile, and "Segment this region…" sends the region to the dialog."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from PySide6.QtWidgets import QDialog

from wsidesk.core.annotations import Annotation, AnnotationStore
from wsidesk.core.slide.demo import write_demo_slide
from wsidesk.gui import main_window as main_window_module


@pytest.fixture
def window(open_window):
    win = open_window(workers=1)
    yield win
    assert win.messages == []  # no warning along the way


@pytest.fixture
def slide(tmp_path) -> Path:
    return write_demo_slide(tmp_path / "slide.svs", width=1024, height=768, seed=2).path.resolve()


def test_regions_belong_to_the_profile_that_drew_them(window, slide, tmp_path):
    window.open_paths([str(slide)])
    panel = window.annotations
    panel.model.add(Annotation("Tumour", shapely.box(100, 100, 900, 700)))
    window.profiles.add_profile("alice")  # closes the slide: the region is saved for "default"
    assert panel.model.annotations() == []
    window.open_paths([str(slide)])
    assert panel.model.annotations() == []  # alice sees the same slide without default's regions
    window.profiles.combo.setCurrentText("default")
    assert [a.name for a in panel.model.annotations()] == ["Tumour"]
    saved = AnnotationStore(tmp_path / "data" / "profiles" / "default").load(slide)
    assert [a.name for a in saved] == ["Tumour"]


def test_segment_this_region_opens_the_dialog_for_it_and_submits_its_roi(window, slide, monkeypatch):
    opened = {}

    class Dialog(main_window_module.SegmentDialog):
        def exec(self) -> int:
            opened["roi"], opened["title"] = self.roi, self.windowTitle()
            return QDialog.DialogCode.Accepted

    submitted = []
    monkeypatch.setattr(main_window_module, "SegmentDialog", Dialog)
    monkeypatch.setattr(main_window_module, "detected_device", lambda: "cpu")  # asking torch takes seconds
    monkeypatch.setattr(window, "segment_slide", lambda params: submitted.append(params))
    window.open_paths([str(slide)])
    panel = window.annotations
    panel.model.add(Annotation("Core 2", shapely.box(100, 100, 900, 700)))
    panel.segment_button.click()
    assert opened["roi"] == ["Core 2"] and opened["title"].startswith("Segment regions")
    assert submitted[0]["roi"] == "Core 2"
