"""InstanSeg models: where they live (`registry`), how they are installed (`install`) and verified,
how they are loaded (`load`) and kept loaded between jobs (`cache`).

A model is one TorchScript file, `instanseg.pt`, laid out as InstanSeg expects under
`INSTANSEG_BIOIMAGEIO_PATH`: `<root>/<name>/<version>/instanseg.pt`, where `root` is
`<data>/models`. Pretrained models are installed on request (`ModelStore.install`); the tiny test
model `wsidesk_test_nuclei` ships inside the repository (`resources/models/`), trained on the
synthetic demo slides only — never use it silently on real slides.

The call interface of every `instanseg.pt` (official and bundled; verified on CPU, torch 2.13)::

    labels = module(x)              # x: torch.float32 (N, 3, H, W), on the module's device
                                    # labels: torch.float32 (N, 1, H, W), integral values,
                                    #   0 = background, 1..k per image (numbered per image)

- Input: RGB at the model's `pixel_size` (0.5 µm/px for all three), each channel of each tile
  scaled by its own 0.1/99.9 percentiles to roughly [0, 1] (InstanSeg's `percentile_normalize`); a
  slide-wide scale works too (`wsidesk.core.segment.normalise.SlideNormaliser`). The module clamps
  the input to [-2, 3] *in place* (pass a tensor you own).
- Size: any H, W (bioimage.io says `min: 32, step: 1`; 16 x 16 still runs, 250 x 300 too); inside,
  the module reflect-pads to a multiple of 16 and crops back, so callers need not pad. The output
  always has the input's H x W. 256 and 512 tiles are fine. float64 input fails: use float32.
- Batches: the backbone runs on the whole batch; the seed/instance post-processing inside runs
  image by image, so its cost grows with N and with the number of nuclei.
- Output dtype is float32 (labels as floats); cast to an integer type before use.
- Keyword options (`min_size`, `seed_threshold`, `mask_threshold`, `peak_distance`,
  `window_size`, ...) tune the post-processing; the defaults are the trained ones.
- Attributes: `module.pixel_size` (float, µm/px), `module.cells_and_nuclei` (bool). A
  cells-and-nuclei model (fluorescence_nuclei_and_cells) returns (N, 2, H, W), nuclei then
  cells, by default (`target_segmentation=torch.tensor([1, 1])`; read from its code, not run here).
- CPU timings, one tile per call, 1 thread on a busy 2-core machine (torch 2.13), demo H&E
  tile with ~30 (256²) / ~146 (512²) nuclei: brightfield_nuclei 1.8 s / 6.3 s, the bundled test
  model 0.9 s / 1.8 s (post-processing dominates the test model). Both found 31-32 / 149 objects.
  Two threads are no faster when other processes share the cores (OpenMP barriers stall).

torch is imported lazily, inside functions only, so `import wsidesk.core` stays light.
"""

from wsidesk.core.segment.models.cache import ModelCache, cached_model
from wsidesk.core.segment.models.install import VPT_REQUIREMENT, VPT_WHEEL_ENV, install_known_model
from wsidesk.core.segment.models.layout import DEFAULT_PIXEL_SIZE, MODEL_FILE, KnownModel, sha256_file
from wsidesk.core.segment.models.load import LoadedModel, choose_device, load_model
from wsidesk.core.segment.models.registry import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    MODEL_DIR_ENV,
    TEST_MODEL,
    ModelInfo,
    ModelStore,
    bundled_models_dir,
    models_root,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PIXEL_SIZE",
    "KNOWN_MODELS",
    "MODEL_DIR_ENV",
    "MODEL_FILE",
    "TEST_MODEL",
    "VPT_REQUIREMENT",
    "VPT_WHEEL_ENV",
    "KnownModel",
    "LoadedModel",
    "ModelCache",
    "ModelInfo",
    "ModelStore",
    "bundled_models_dir",
    "cached_model",
    "choose_device",
    "install_known_model",
    "load_model",
    "models_root",
    "sha256_file",
]
