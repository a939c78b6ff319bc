"""InstanSeg's post-processing (backbone output -> instance labels) as a separate call.

The TorchScript `instanseg.pt` runs its backbone (`module.fcn`) and this post-processing in one
`forward`. Split in two, the engine can run the backbone on another runtime (OpenVINO) and overlap
batch n's post-processing with batch n+1's backbone. This is a line-by-line port of
`InstanSeg_Torchscript.forward` of instanseg-torch 0.1.2 for one-output (nuclei) models, with the
module's own default thresholds and its trained `pixel_classifier`; importing `instanseg` itself
would pull pandas and matplotlib. Tests check that it gives the same labels as the scripted module.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

MIN_DIM = 16  # the module reflect-pads H and W up to a multiple of this before the backbone


def splittable(module: Any) -> bool:
    """Whether `module` is a one-output InstanSeg TorchScript module this port reproduces."""
    needed = ("fcn", "pixel_classifier", "default_mask_threshold", "dim_coords", "n_sigma", "dim_seeds")
    return all(hasattr(module, name) for name in needed) and not bool(getattr(module, "cells_and_nuclei", True))


def pad_input(x: Any) -> tuple[Any, tuple[int, int]]:
    """Clamp to [-2, 3] in place and reflect-pad H, W to a multiple of 16, as the module's forward does."""
    import torch

    torch.clamp_max_(x, 3)
    torch.clamp_min_(x, -2)
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % MIN_DIM, -w % MIN_DIM
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, [0, pad_w, 0, pad_h], mode="reflect")
    return x, (pad_h, pad_w)


class InstanSegPostprocess:
    """Backbone output (N, C, H+pad, W+pad) float32 -> one int32 (H, W) label image per tile."""

    def __init__(self, module: Any) -> None:
        if not splittable(module):
            msg = "this model's post-processing cannot be split from its backbone (cells-and-nuclei or unknown model)"
            raise ValueError(msg)
        self.pixel_classifier = module.pixel_classifier
        self.dim_coords = int(module.dim_coords)
        self.n_sigma = int(module.n_sigma)
        self.dim_seeds = int(module.dim_seeds)
        self.mask_threshold = float(module.default_mask_threshold)
        self.peak_distance = int(module.default_peak_distance)
        self.seed_threshold = float(module.default_seed_threshold)
        self.overlap_threshold = float(module.default_overlap_threshold)
        self.fg_threshold = float(module.default_fg_threshold)
        self.window_size = int(module.default_window_size)
        self.cleanup_fragments = bool(module.default_cleanup_fragments)
        # Models scripted by different instanseg versions merge overlapping seeds by IoU or by
        # intersection over the smaller area (brightfield_nuclei 0.1.1): use what this module's code calls.
        code = str(getattr(module, "code", ""))
        self.overlap = _sparse_overlap_min_area if "intersection_over_minimum_area" in code else _sparse_iou

    def __call__(self, out: Any, pad: tuple[int, int]) -> list[np.ndarray]:
        import torch

        out = torch.as_tensor(out)
        h = out.shape[-2] - pad[0]
        w = out.shape[-1] - pad[1]
        with torch.inference_mode():
            out = out[..., :h, :w].float()
            return [self._labels(out[i]).to("cpu").numpy().astype(np.int32, copy=False) for i in range(out.shape[0])]

    def _labels(self, x: Any) -> Any:  # noqa: PLR0914 - the port keeps the original's steps
        import torch

        height, width = x.shape[-2:]
        xxyy = _coordinate_map(height, width, x.device)
        fields = (torch.sigmoid(x[0 : self.dim_coords]) - 0.5) * 8
        sigma = x[self.dim_coords : self.dim_coords + self.n_sigma]
        if self.dim_seeds == 1:
            mask_map = (x[-1] / 15) + 0.5
        else:
            binary_map = torch.sigmoid(x[-1])
            mask_map = (x[-2] / 15).clone() + 0.5
            mask_map[~(binary_map > self.fg_threshold)] = 0
        centroids_idx = _peak_local_max(mask_map, self.peak_distance, self.seed_threshold)
        fields = fields + xxyy
        c = fields[:, centroids_idx[:, 0], centroids_idx[:, 1]].T
        n_cells = c.shape[0]
        if n_cells == 0:
            return torch.zeros((height, width), dtype=torch.int32, device=x.device)

        window = min(self.window_size, height, width)
        centroids = centroids_idx.clone().cpu()
        centroids[:, 0].clamp_(min=window, max=height - window)
        centroids[:, 1].clamp_(min=window, max=width - window)
        corners = torch.tensor([[-1, -1], [1, 1]], device=x.device, dtype=centroids.dtype)
        window_slices = centroids[:, None].to(x.device) + corners * window
        size = window * 2
        grid_x, grid_y = torch.meshgrid(
            torch.arange(size, device=x.device, dtype=torch.long),
            torch.arange(size, device=x.device, dtype=torch.long),
            indexing="ij",
        )
        mesh = torch.stack((grid_x, grid_y)).expand(n_cells, 2, size, size)
        mesh_flat = torch.flatten(mesh, 2).permute(1, 0, -1) + window_slices[:, 0].permute(1, 0)[:, :, None]
        mesh_flat = torch.flatten(mesh_flat, 1)

        features = _feature_engineering(fields, c, sigma, window, mesh_flat)
        prob = torch.sigmoid(self.pixel_classifier(features)).reshape(n_cells, 1, size, size)
        coords = mesh_flat.reshape(2, n_cells, size, size)
        if self.cleanup_fragments:
            shifted = centroids_idx - window_slices[:, 0, :]
            seeds = torch.zeros_like(prob)
            seeds[torch.arange(n_cells, device=x.device), 0, shifted[:, 0], shifted[:, 1]] = 1
            filled = _flood_fill(prob >= self.mask_threshold, seeds) > 0
            holes = torch.bitwise_xor(_fill_holes(filled), filled)
            prob[~filled] = 0  # drop fragments not connected to the seed
            prob[holes] = self.mask_threshold  # fill holes
        labels = _convert(prob, coords, (height, width), self.mask_threshold)

        # Merge objects that overlap by IoU > overlap_threshold (one cell found from two seeds).
        ids = torch.arange(n_cells, dtype=torch.long, device=x.device)[:, None, None].expand(n_cells, size, size)
        pixel = mesh_flat[0] * width + mesh_flat[1]
        fg = prob.flatten() >= self.mask_threshold
        onehot = torch.sparse_coo_tensor(
            torch.stack((ids.flatten(), pixel))[:, fg],
            torch.ones(int(fg.sum()), dtype=prob.dtype, device=x.device),
            size=(n_cells, height * width),
            check_invariants=False,
        )
        overlap = self.overlap(onehot)
        remapping = _connected_components((overlap > self.overlap_threshold).to(torch.long))
        return _remap(remapping, labels).to(torch.int32)


def _coordinate_map(height: int, width: int, device: Any) -> Any:
    import torch

    xx = torch.linspace(0, width * 64 / 256, width, device=device).view(1, 1, -1).expand(1, height, width)
    yy = torch.linspace(0, height * 64 / 256, height, device=device).view(1, -1, 1).expand(1, height, width)
    return torch.cat((xx, yy), 0)


def _peak_local_max(image: Any, neighbourhood: int, minimum: float) -> Any:
    """(K, 2) row-major positions that are the first maximum of their window and above `minimum`.

    The same peaks as the module's `max_pool2d(return_indices=True)` test (a pixel is a peak when the
    pool's argmax, the first maximum in row-major order, is itself), ~8x cheaper: the window maximum is
    separable, and the rare candidates that tie with an earlier pixel of their window are dropped.
    """
    import torch

    h, w = image.shape
    k = 2 * neighbourhood + 1
    pooled = _window_max(image.reshape(1, h, w), (1, k, k), float("-inf"))[0]
    candidates = torch.nonzero((image == pooled) & (pooled > minimum)).to(torch.long)
    if not len(candidates):
        return candidates
    # Values of each candidate's window in row-major order, -inf outside the image; the positions
    # before the centre are the ones the pool would have found first.
    padded = torch.nn.functional.pad(image, [neighbourhood] * 4, value=float("-inf"))
    offsets = torch.arange(k, device=image.device)
    rows = (candidates[:, 0, None] + offsets)[:, :, None].expand(-1, k, k)
    cols = (candidates[:, 1, None] + offsets)[:, None, :].expand(-1, k, k)
    earlier = padded[rows, cols].reshape(len(candidates), k * k)[:, : (k * k) // 2]
    values = image[candidates[:, 0], candidates[:, 1]]
    return candidates[~(earlier == values[:, None]).any(dim=1)]


def _feature_engineering(x: Any, c: Any, sigma: Any, window: int, mesh_flat: Any) -> Any:
    """(n_cells * size * size, e + s) classifier input: each window's fields minus its seed, and sigma."""
    import torch

    e, n_cells = x.shape[0], c.shape[0]
    size = 2 * window
    # One gather of fields and sigma together; (channels, n_cells * size * size) -> pixels x channels.
    slices = torch.cat([x, sigma])[:, mesh_flat[0], mesh_flat[1]].reshape(-1, n_cells, size * size)
    slices[:e] -= c.T[:, :, None]
    return slices.permute(1, 2, 0).reshape(n_cells * size * size, -1)


def _flood_fill(mask: Any, seed: Any) -> Any:
    """Grow `seed` inside `mask` (8-connected, per window) until it stops changing.

    On the CPU this is one connected-component labelling (scipy) instead of up to 64 rounds of 3x3 max
    pooling over every window (max pooling was ~60% of post-processing in a profile): the same pixels,
    the components of `mask` touching the seeds' 3x3 neighbourhood (checked against the module's labels).
    """
    import torch

    if mask.device.type == "cpu":
        from scipy import ndimage as ndi

        m = mask.numpy()[:, 0].astype(bool, copy=False)
        start = ndi.maximum_filter((seed[:, 0] > 0).numpy(), size=(1, 3, 3), mode="constant") & m  # 3x3 dilation
        labels, _ = ndi.label(m, structure=_WINDOW_3X3)
        touched = np.unique(labels[start])
        return torch.from_numpy(np.isin(labels, touched[touched > 0]))[:, None]
    mask = mask.float()
    seed = seed.clone()
    for _ in range(max(seed.shape[-1], seed.shape[-2])):
        grown = torch.nn.functional.max_pool2d(seed.float(), kernel_size=3, stride=1, padding=1)
        grown = torch.bitwise_and(grown > 0, mask > 0)
        if torch.equal(seed, grown):
            return grown > 0
        seed = grown
    return seed > 0


# 8-connectivity inside each (C, h, w) window, never across windows
_WINDOW_3X3 = np.zeros((3, 3, 3), dtype=bool)
_WINDOW_3X3[1] = True


def _fill_holes(mask: Any) -> Any:
    import torch

    # The module's three 3x3 max pools are one 7x7 window maximum.
    dilated = _window_max(mask[:, 0].to(torch.uint8), (1, 7, 7), 0)[:, None]
    return ~_flood_fill(~mask, ~(dilated > 0))


def _window_max(x: Any, size: tuple[int, int, int], outside: float) -> Any:
    """Maximum over a `size` window centred on each element of a 3-D tensor, `outside` past its edges.

    Separable, so exact: scipy's 1-D running maximum on the CPU (~8x faster than torch's 2-D max pool
    there), two 1-D max pools elsewhere.
    """
    import torch

    if x.device.type == "cpu":
        from scipy import ndimage as ndi

        return torch.from_numpy(ndi.maximum_filter(x.numpy(), size=size, mode="constant", cval=outside))
    return _pooled_max(x, size)


def _pooled_max(x: Any, size: tuple[int, int, int]) -> Any:
    """`_window_max` by two 1-D max pools (padding is -inf, so the outside never wins)."""
    import torch

    _, kh, kw = size
    y = x[:, None].float()
    y = torch.nn.functional.max_pool2d(y, (1, kw), stride=1, padding=(0, kw // 2))
    y = torch.nn.functional.max_pool2d(y, (kh, 1), stride=1, padding=(kh // 2, 0))
    return y[:, 0].to(x.dtype)


def _convert(prob: Any, coords: Any, size: tuple[int, int], threshold: float) -> Any:
    """Label image: each pixel takes the object with the highest probability there (ties: lowest id)."""
    import torch

    n, device = prob.shape[0], prob.device
    ids = torch.arange(1, 1 + n, dtype=torch.float32, device=device)
    labels = (torch.ones_like(prob) * ids.reshape(-1, 1, 1, 1)).flatten()
    flat = prob.flatten()
    x = coords[0].flatten()
    y = coords[1].flatten()
    keep = flat >= threshold
    count = int(torch.count_nonzero(keep))
    if count == 0:
        return torch.zeros(size, dtype=torch.float32, device=device)
    arr = torch.zeros((count, 5), dtype=coords.dtype, device=device)
    arr[:, 1] = y[keep]
    arr[:, 2] = x[keep]
    arr[:, 0] = arr[:, 2] * size[1] + arr[:, 1]
    arr[:, 3] = labels[keep]
    arr = arr[flat[keep].argsort(descending=True, stable=True)]
    arr = arr[arr[:, 0].argsort(descending=False, stable=True)]
    first = torch.ones_like(arr[:, 0], dtype=torch.bool)
    first[1:] = arr[1:, 0] != arr[:-1, 0]
    out = torch.zeros(size, dtype=torch.float32, device=device)
    out[arr[first, 2], arr[first, 1]] = arr[first, 3].float()
    return out


def _sparse_iou(onehot: Any) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        intersection = torch.sparse.mm(onehot, onehot.T).to_dense()
    sums = torch.sparse.sum(onehot, dim=(1,))[None].to_dense()
    return intersection / (sums.T + sums - intersection)


def _sparse_overlap_min_area(onehot: Any) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        intersection = torch.sparse.mm(onehot, onehot.T).to_dense()
    sums = torch.sparse.sum(onehot, dim=(1,)).to_dense()
    return intersection / torch.min(sums[:, None], sums[None, :])


def _connected_components(adjacency: Any, max_iterations: int = 100) -> Any:
    """(2, n+1) remapping: object i (1-based) -> the smallest id of its connected component."""
    import torch

    n, device = adjacency.shape[0], adjacency.device
    labels = torch.arange(1, n + 1, dtype=torch.long, device=device)
    indices = torch.nonzero(adjacency + torch.eye(n, device=device))
    row, col = indices[:, 0], indices[:, 1]
    for _ in range(max_iterations):
        previous = labels.clone()
        smallest = torch.full((n,), float("inf"), dtype=torch.float, device=device)
        smallest.scatter_reduce_(0, row, labels[col].float(), reduce="amin")
        labels = torch.minimum(labels, smallest)
        if torch.equal(labels, previous):
            break
    nodes = torch.arange(1, n + 1, dtype=torch.long, device=device)
    return torch.cat((torch.zeros(2, 1, dtype=torch.long, device=device), torch.stack((nodes, labels))), dim=1)


def _remap(remapping: Any, x: Any) -> Any:
    import torch

    ordered = remapping[:, remapping[0].argsort()]
    index = torch.bucketize(x.ravel(), ordered[0])
    return ordered[1][index].reshape(x.shape)
