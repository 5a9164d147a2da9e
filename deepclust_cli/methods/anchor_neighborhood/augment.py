"""Per-sample image augmentation applied to whole batches on the images' own device.

AND (and any method that trains on augmented views) needs a fresh random view of every image in
every batch. torchvision's transforms do that one PIL image or tensor at a time on the CPU, which
leaves a GPU waiting on Python. :class:`BatchAugment` instead draws every sample's parameters at
once and applies them with a handful of batched tensor ops:

1. RandomResizedCrop — all crop boxes, resized to ``S×S``, in one ``affine_grid`` + ``grid_sample``;
2. random horizontal flip — folded into the same affine map;
3. ColorJitter (brightness, contrast, saturation, hue) in a random order per sample;
4. RandomGrayscale;

then per-channel normalization. Each op follows torchvision's per-sample semantics (see the
docstrings of :meth:`BatchAugment.sample` and the ``adjust_*`` functions for the formulas).

Every random number is drawn on the CPU from the caller's ``torch.Generator`` and only then moved
to the images' device, so a given generator state yields the same augmentation on CPU and CUDA,
and a run resumed from a checkpoint (which re-seeds its generators per epoch) redraws exactly
what the uninterrupted run drew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple

import torch
import torch.nn.functional as F

from deepclust_cli.errors import require
from deepclust_cli.methods.anchor_neighborhood.config import AugmentConfig

# ITU-R BT.601 luma weights (PIL's "L" conversion).
LUMA = (0.299, 0.587, 0.114)

# torchvision's RandomResizedCrop gives up after this many rejected boxes.
CROP_ATTEMPTS = 10

# Colour-jitter op indices: columns of AugmentParams.factors and values of AugmentParams.order.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


@dataclass
class AugmentParams:
    """One batch's random draws, all on the CPU.

    ``box``: int64 ``N×4`` crop boxes (top, left, height, width) in input pixels; ``flip``: bool
    ``N``; ``factors``: float32 ``N×4`` jitter factors (brightness, contrast, saturation, hue);
    ``order``: int64 ``N×4``, ``order[n, k]`` is the jitter op sample ``n`` applies k-th;
    ``gray``: bool ``N``.
    """

    box: torch.Tensor
    flip: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    gray: torch.Tensor

    def __len__(self) -> int:
        return len(self.box)

    def __getitem__(self, rows: slice) -> "AugmentParams":
        """The draws of the samples at ``rows`` (a data-parallel rank's shard of a batch)."""
        return AugmentParams(self.box[rows], self.flip[rows], self.factors[rows], self.order[rows], self.gray[rows])


# --- colour ops on float N×C×H×W batches in [0, 1], one factor per sample ----------------------


def _per_sample(factor: torch.Tensor) -> torch.Tensor:
    return factor.view(-1, 1, 1, 1)


def _blend(image: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """``(ratio·image + (1 - ratio)·other)`` clamped to [0, 1] — torchvision's ``_blend``."""
    ratio = _per_sample(ratio)
    return (ratio * image + (1.0 - ratio) * other).clamp(0.0, 1.0)


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma ``0.299·R + 0.587·G + 0.114·B`` as ``N×1×H×W``; a 1-channel image is its own luma."""
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(x·b, 0, 1)`` per sample."""
    return (images * _per_sample(factor)).clamp(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp((x - m)·c + m, 0, 1)`` with ``m`` the mean of each image's grayscale."""
    mean = to_grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp((x - g)·s + g, 0, 1)`` with ``g`` the grayscale image; identity for 1 channel."""
    if images.shape[1] == 1:
        return images
    return _blend(images, to_grayscale(images), factor)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to HSV with H, S, V in [0, 1], channel-wise like ``colorsys.rgb_to_hsv``.

    ``V = max``, ``C = max - min``, ``S = C / V`` (0 where V = 0), ``H = h'/6 mod 1`` with
    ``h' = (G - B)/C`` if max is R, ``2 + (B - R)/C`` if G, ``4 + (R - G)/C`` if B, and 0 where C = 0.
    """
    r, g, b = images.unbind(dim=1)
    value = images.amax(dim=1)
    chroma = value - images.amin(dim=1)
    # Grey pixels (C = 0, black included) would divide by zero. Their channels are equal, so
    # dividing by 1 instead leaves exactly the S = 0 and H = 0 they should have.
    ones = torch.ones_like(value)
    saturation = chroma / torch.where(value > 0, value, ones)
    safe = torch.where(chroma > 0, chroma, ones)
    hue = torch.where(
        value == r,
        (g - b) / safe,
        torch.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe),
    )
    hue = torch.remainder(hue / 6.0, 1.0)
    return torch.stack((hue, saturation, value), dim=1)


def hsv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] to RGB: channel ``f(n) = V - V·S·clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6H) mod 6`` and ``n`` = 5, 3, 1 for R, G, B — the branch-free form of the
    six-sector formula."""
    hue, saturation, value = (channel.unsqueeze(1) for channel in images.unbind(dim=1))
    n = torch.tensor([5.0, 3.0, 1.0], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * hue, 6.0)
    return value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def adjust_hue(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shift H in HSV by ``h`` (mod 1), clamped to [0, 1]; identity for 1 channel."""
    if images.shape[1] == 1:
        return images
    hsv = rgb_to_hsv(images)
    hue = torch.remainder(hsv[:, :1] + _per_sample(factor), 1.0)
    return hsv_to_rgb(torch.cat((hue, hsv[:, 1:]), dim=1)).clamp(0.0, 1.0)


JITTER_OPS: Tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_hue,
)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """float32 in [0, 1]: uint8 divided by 255, floating point taken as already in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div(255.0)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    return images.to(torch.float32)


class BatchAugment:
    """Random training views (:meth:`train`) and deterministic test views (:meth:`test`) of image
    batches ``N×C×H×W`` (uint8 in [0, 255] or float in [0, 1], any device), returned as float32
    ``N×C×S×S`` on the same device, normalized ``(x - mean) / std`` per channel."""

    def __init__(self, config: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> None:
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        require(len(mean) == len(std), f"mean has {len(mean)} values but std has {len(std)}")
        require(all(v > 0 for v in std), f"std values must be > 0, got {std}")
        self.config = config
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) if mean else None
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) if std else None
        self._stats: Dict[torch.device, Tuple[torch.Tensor, torch.Tensor]] = {}

    # --- public entry points ----------------------------------------------------------------

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view per image, parameters drawn from the CPU ``generator``."""
        self._check(images)
        params = self.sample(len(images), images.shape[2], images.shape[3], generator)
        return self.apply(images, params)

    def test(self, images: torch.Tensor) -> torch.Tensor:
        """Bilinear resize (no antialiasing) to ``S×S`` when the size differs, then normalize."""
        self._check(images)
        x = to_float(images)
        size = self.output_size(images.shape[2])
        if x.shape[2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        return self.normalize(x)

    # --- the two halves of train(), public so they can be checked separately ----------------

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> AugmentParams:
        """Draw ``n`` samples' parameters on the CPU from ``generator``, in a fixed order and amount.

        Crop (torchvision's RandomResizedCrop rule, 10 candidates drawn at once): area
        ``a = U(scale)·H·W``, ratio ``r = exp(U(log ratio))``, ``w = round(√(a·r))``,
        ``h = round(√(a/r))``; the first candidate with ``0 < w <= W`` and ``0 < h <= H`` wins,
        its top-left uniform over the positions that fit. A sample with no valid candidate gets
        the centered whole image, narrowed to the nearest ratio bound when ``W/H`` lies outside
        them. Flip with probability ``hflip_p``; jitter factors uniform in
        ``[max(0, 1 - v), 1 + v]`` (hue: ``[-hue, hue]``); op order a uniform permutation
        (argsort of ``U(0, 1)^4``); grayscale with probability ``grayscale_p``.
        """
        if generator.device.type != "cpu":
            raise ValueError(f"augmentation draws need a CPU generator, got one on {generator.device}")
        c = self.config
        # Everything is drawn whether or not its op is enabled, so the stream consumed per batch
        # depends only on n; float64 mirrors torchvision's Python-float arithmetic.
        widths = [CROP_ATTEMPTS, CROP_ATTEMPTS, 1, 1, 1, 4, 4, 1]
        draws = torch.rand(n, sum(widths), generator=generator, dtype=torch.float64).split(widths, dim=1)
        area_u, ratio_u, top_u, left_u, flip_u, factor_u, order_u, gray_u = draws
        top_u, left_u, flip_u, gray_u = (u.squeeze(1) for u in (top_u, left_u, flip_u, gray_u))

        (scale_lo, scale_hi), (ratio_lo, ratio_hi) = c.crop_scale, c.crop_ratio
        area = height * width * (scale_lo + (scale_hi - scale_lo) * area_u)
        log_lo, log_hi = math.log(ratio_lo), math.log(ratio_hi)
        ratio = torch.exp(log_lo + (log_hi - log_lo) * ratio_u)
        # torch.round, like Python's round, rounds halves to even.
        w = torch.round(torch.sqrt(area * ratio)).to(torch.int64)
        h = torch.round(torch.sqrt(area / ratio)).to(torch.int64)
        valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        fallback_h, fallback_w = _fallback_box(height, width, ratio_lo, ratio_hi)
        found = valid.any(dim=1)
        h = torch.where(found, h, fallback_h)
        w = torch.where(found, w, fallback_w)
        top = torch.where(found, _uniform_int(top_u, height - h), (height - h) // 2)
        left = torch.where(found, _uniform_int(left_u, width - w), (width - w) // 2)

        lo = torch.tensor([max(0.0, 1 - c.brightness), max(0.0, 1 - c.contrast), max(0.0, 1 - c.saturation), -c.hue])
        hi = torch.tensor([1 + c.brightness, 1 + c.contrast, 1 + c.saturation, c.hue])
        return AugmentParams(
            box=torch.stack((top, left, h, w), dim=1),
            flip=flip_u < c.hflip_p,
            factors=(lo + (hi - lo) * factor_u).to(torch.float32),
            order=order_u.argsort(dim=1),
            gray=gray_u < c.grayscale_p,
        )

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Crop + resize + flip, colour jitter in each sample's order, grayscale, normalize."""
        self._check(images)
        if len(params) != len(images):
            raise ValueError(f"{len(params)} parameter sets for {len(images)} images")
        n, channels, height, _ = images.shape
        device, size = images.device, self.output_size(height)
        if n == 0:  # affine_grid refuses an empty batch
            return torch.empty(0, channels, size, size, dtype=torch.float32, device=device)
        enabled = [self.config.brightness > 0, self.config.contrast > 0]
        # Saturation and hue mean nothing for one channel; skipping them saves the work.
        enabled += [channels == 3 and self.config.saturation > 0, channels == 3 and self.config.hue > 0]

        # For each position in the jitter order, the samples grouped by the op they apply there and
        # each group's size. Worked out on the CPU from the CPU-side draws, so slicing the groups on
        # the device needs no host sync, and each op runs only on its own samples rather than on
        # the whole batch at all four positions.
        groups = torch.stack([params.order[:, position].argsort(stable=True) for position in range(4)])
        counts = [torch.bincount(params.order[:, position], minlength=4).tolist() for position in range(4)]
        flags = torch.stack((params.flip, params.gray), dim=1).float()
        floats = torch.cat((params.box.float(), flags, params.factors), dim=1)
        # A blocking host-to-device copy waits for all work queued on the GPU — the very stall this
        # module exists to avoid; pageable memory is staged before a non-blocking copy returns.
        floats, groups = floats.to(device, non_blocking=True), groups.to(device, non_blocking=True)
        box, flip, gray, factors = floats[:, :4], floats[:, 4] > 0.5, floats[:, 5] > 0.5, floats[:, 6:]

        x = self._crop(to_float(images), box, flip, size)  # a fresh tensor: safe to update in place
        for position in range(4):
            start = 0
            for op, count in enumerate(counts[position]):
                if enabled[op] and count:
                    index = groups[position, start : start + count]
                    changed = JITTER_OPS[op](x.index_select(0, index), factors[index, op])
                    x.index_copy_(0, index, changed)  # groups at one position are disjoint
                start += count

        if channels == 3 and self.config.grayscale_p > 0:
            x = torch.where(_per_sample(gray), to_grayscale(x).expand_as(x), x)
        return self.normalize(x)

    # --- helpers ------------------------------------------------------------------------------

    def output_size(self, height: int) -> int:
        """``S``: ``crop_size`` when set, else the input height."""
        return self.config.crop_size if self.config.crop_size is not None else height

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel; unchanged when no statistics were given."""
        if self.mean is None:
            return images
        mean, std = self._stats_on(images.device)
        return (images - mean) / std

    def _stats_on(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        # Cached per device so each batch does not copy the statistics host-to-device again.
        if device not in self._stats:
            assert self.mean is not None and self.std is not None
            self._stats[device] = (self.mean.to(device), self.std.to(device))
        return self._stats[device]

    def _check(self, images: torch.Tensor) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
        if self.mean is not None:
            require(
                images.shape[1] == self.mean.shape[1],
                f"images have {images.shape[1]} channels but mean/std have {self.mean.shape[1]} values",
            )

    @staticmethod
    def _crop(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
        """Resample every box ``(top i, left j, height h, width w)`` (float ``N×4``) to ``size×size``.

        With align_corners=False, normalized ±1 are the outer pixel edges, so mapping output
        ``u ∈ [-1, 1]`` to input ``x = u·w/W + (2j + w)/W - 1`` (and likewise for y) puts the box's
        edges exactly on the output's; a flip negates the ``u`` coefficient.
        """
        n, c, height, width = x.shape
        top, left, h, w = box.unbind(dim=1)
        theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=x.device)
        theta[:, 0, 0] = torch.where(flip, -w / width, w / width)
        theta[:, 0, 2] = (2 * left + w) / width - 1
        theta[:, 1, 1] = h / height
        theta[:, 1, 2] = (2 * top + h) / height - 1
        grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
        # Sample points of a downscaled box can sit less than half a pixel from the image edge;
        # border padding keeps the edge value there instead of blending in black.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _uniform_int(u: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """An integer uniform on ``0..high`` from ``u ~ U[0, 1)`` (clamped against rounding up)."""
    return torch.minimum(torch.floor(u * (high + 1)).to(torch.int64), high).clamp(min=0)


def _fallback_box(height: int, width: int, ratio_lo: float, ratio_hi: float) -> Tuple[int, int]:
    """torchvision's (h, w) when all attempts fail: the whole image, cut to the nearest ratio bound."""
    in_ratio = width / height
    if in_ratio < ratio_lo:
        return int(round(width / ratio_lo)), width
    if in_ratio > ratio_hi:
        return height, int(round(height * ratio_hi))
    return height, width
