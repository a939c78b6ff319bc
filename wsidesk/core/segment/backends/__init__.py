"""Inference backends: the model's backbone run by torch or OpenVINO, behind one small interface."""

from __future__ import annotations

import importlib.util


def openvino_available() -> bool:
    """Whether the `openvino` package is installed (found without importing it)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False
