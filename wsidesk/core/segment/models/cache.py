"""Models loaded in this process, kept between jobs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from wsidesk.core.segment.models.load import LoadedModel, choose_device, load_model


class ModelCache:
    """Models loaded in this process, so that consecutive jobs skip the load (a Dask worker keeps its
    model on its GPU between slides). Keyed by resolved path, device, and the file's size and mtime (a
    reinstalled model loads again); the least recently used beyond `max_models` is dropped.
    Thread-safe: threads asking for the same model wait for one load. Callers only run the module.
    """

    def __init__(self, max_models: int = 2) -> None:
        if max_models < 1:
            msg = f"max_models must be at least 1, got {max_models}"
            raise ValueError(msg)
        self._max = max_models
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, str, int, int], LoadedModel] = OrderedDict()
        self._loading: dict[tuple[str, str, int, int], threading.Lock] = {}

    def get(self, path: str | Path, *, device: str = "auto") -> LoadedModel:
        path = Path(path)
        dev = choose_device(device)
        try:
            stat = path.stat()
        except OSError:
            return load_model(path, device=dev)  # says what is wrong with the file
        key = (str(path.resolve()), dev, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            model = load_model(path, device=dev)
            with self._lock:
                self._models[key] = model
                while len(self._models) > self._max:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
        return model

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


# One per process on purpose: a Dask worker process has no app object to own a cache, and every job
# it runs should find the model already loaded.
_PROCESS_MODELS = ModelCache()


def cached_model(path: str | Path, *, device: str = "auto") -> LoadedModel:
    """`load_model` through this process's cache: the first job loads, later jobs reuse it."""
    return _PROCESS_MODELS.get(path, device=device)
