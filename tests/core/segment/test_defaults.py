from __future__ import annotations

import pytest

from wsidesk.core.segment.defaults import GPU, SegmentDefaults, recommended_settings


def test_gpu_devices_get_big_batches_with_torch() -> None:
    assert recommended_settings("cuda", "torch") == GPU
    assert recommended_settings("cuda:1", "auto").batch_size == 16
    assert recommended_settings("mps", "auto") == GPU


def test_cpu_gets_small_batches_on_either_backend() -> None:
    for backend in ("auto", "torch", "openvino"):
        settings = recommended_settings("cpu", backend)
        assert isinstance(settings, SegmentDefaults)
        assert 1 <= settings.batch_size <= 2
        assert settings.tile_size > 0 and settings.padding >= 0


def test_openvino_settings_do_not_depend_on_the_torch_device() -> None:
    assert recommended_settings("cuda", "openvino") == recommended_settings("cpu", "openvino")


@pytest.mark.parametrize(("device", "backend"), [("tpu", "torch"), ("cpu", "onnx")])
def test_unknown_device_or_backend_is_a_clear_error(device: str, backend: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        recommended_settings(device, backend)
