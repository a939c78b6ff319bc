"""The Segment dialog: installed models, machine-appropriate defaults, a tile/time estimate, the job params."""

from __future__ import annotations

import pytest

from wsidesk.core.jobs.segment import SegmentParams
from wsidesk.core.segment.defaults import recommended_settings
from wsidesk.core.segment.estimate import installed_models, seconds_per_tile
from wsidesk.core.segment.models import ModelStore
from wsidesk.core.workflow.single import segment_workflow
from wsidesk.gui.segment_dialog import SegmentDialog


@pytest.fixture(scope="module")
def demo_slide(tmp_path_factory):
    """A small synthetic slide (planning it is quick); `.path` like the session-wide demo slide."""
    from wsidesk.core.slide.demo import write_demo_slide

    return write_demo_slide(tmp_path_factory.mktemp("dialog") / "small.svs", width=2048, height=1536, seed=3)


@pytest.fixture
def models(tmp_path):
    return installed_models(ModelStore(tmp_path / "models"))  # nothing installed: the bundled test model


def _dialog(qtbot, slide, models, **kwargs) -> SegmentDialog:
    dialog = SegmentDialog(slide, models, **kwargs)
    qtbot.addWidget(dialog)
    return dialog


def test_dialog_lists_installed_models_with_pixel_size_and_test_flag(qtbot, demo_slide, models):
    dialog = _dialog(qtbot, demo_slide.path, models)
    assert [m.name for m in models] == ["wsidesk_test_nuclei"]
    assert models[0].bundled_test and models[0].pixel_size == 0.5
    assert "0.5 µm/px" in dialog.model.itemText(0) and "bundled test model" in dialog.model.itemText(0)
    assert "synthetic" in dialog.model_note.text()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_defaults_follow_the_recommended_settings_of_the_detected_device(qtbot, demo_slide, models, device):
    dialog = _dialog(qtbot, demo_slide.path, models, detected_device=device)
    best = recommended_settings(device, dialog.backend_name())
    assert (dialog.tile_size.value(), dialog.padding.value(), dialog.batch_size.value()) == (
        best.tile_size,
        best.padding,
        best.batch_size,
    )
    assert device in dialog.device.itemText(0)  # "auto (cpu on this computer)"


def test_choosing_cuda_on_a_cpu_machine_switches_to_the_gpu_defaults(qtbot, demo_slide, models):
    dialog = _dialog(qtbot, demo_slide.path, models, detected_device="cpu")
    cpu_batch = dialog.batch_size.value()
    dialog.device.setCurrentIndex(dialog.device.findData("cuda"))
    assert dialog.batch_size.value() == recommended_settings("cuda", "torch").batch_size
    assert dialog.batch_size.value() > cpu_batch


def test_estimate_counts_tiles_from_a_real_plan_and_says_it_is_an_estimate(qtbot, demo_slide, models):
    from wsidesk.core.jobs.tissue import TilingParams, compute_plan

    dialog = _dialog(qtbot, demo_slide.path, models, detected_device="cpu")
    qtbot.waitUntil(lambda: dialog.tile_counts is not None, timeout=20_000)
    plan, _, _ = compute_plan(demo_slide.path, TilingParams(tile_size=dialog.tile_size.value(), padding=80))
    assert dialog.tile_counts == (plan.total, plan.tissue)
    qtbot.waitUntil(lambda: "tissue tiles" in dialog.estimate.text(), timeout=2000)
    text = dialog.estimate.text()
    assert f"{plan.tissue:,} tissue tiles" in text and "estimate" in text.lower() and "on cpu" in text
    per_tile = seconds_per_tile(device="cpu", backend="torch", bundled_test=True, tile_size=512, padding=80)
    assert per_tile > seconds_per_tile(device="cuda", backend="torch", bundled_test=True, tile_size=512, padding=80)


def test_ok_produces_the_segment_job_params(qtbot, demo_slide, models):
    dialog = _dialog(qtbot, demo_slide.path, models, detected_device="cpu", roi=["tumour", "core 2"])
    dialog.precision.setCurrentIndex(dialog.precision.findData("fp32"))
    dialog.tile_size.setValue(256)
    dialog.batch_size.setValue(3)
    params = dialog.params()
    expected = {
        "model": "wsidesk_test_nuclei",
        "device": "auto",
        "precision": "fp32",
        "tile_size": 256,
        "padding": dialog.padding.value(),
        "batch_size": 3,
    }
    assert {k: params[k] for k in expected} == expected
    specs = {s.name for s in SegmentParams.specs()}
    assert ("roi" in params) == ("roi" in specs)
    assert ("backend" in params) == ("backend" in specs)
    if "roi" in params:
        assert params["roi"] == "tumour,core 2"
    assert dialog.windowTitle().startswith("Segment regions")
    # What OK submits: a one-job workflow whose params validate against the job type.
    job = next(job for _, job in segment_workflow(demo_slide.path, params).jobs())
    assert SegmentParams.from_mapping(job.params).tile_size == 256


def test_estimate_for_regions_plans_only_inside_them(qtbot, demo_slide, models, tmp_path):
    from shapely.geometry import box

    from wsidesk.core.annotations.model import Annotation
    from wsidesk.core.annotations.store import AnnotationStore

    profile_dir = tmp_path / "profile"
    AnnotationStore(profile_dir).save(demo_slide.path, [Annotation("Tumour", box(512, 512, 1024, 1024))])
    dialog = _dialog(qtbot, demo_slide.path, models, roi=["Tumour"], profile_dir=profile_dir)
    qtbot.waitUntil(lambda: dialog.tile_counts is not None, timeout=20_000)
    _total, tissue = dialog.tile_counts
    assert 1 <= tissue <= 4  # a 512² px region at 512 px tiles touches at most 2 x 2 tiles
    qtbot.waitUntil(lambda: "inside the regions" in dialog.estimate.text(), timeout=2000)
    assert dialog.params()["roi"] == "Tumour"
