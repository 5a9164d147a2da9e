"""Batched augmentation: shapes, determinism, exact crops, colour ops against torchvision's."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision.transforms.functional as TF

from deepclust_cli.errors import ConfigError
from deepclust_cli.methods.anchor_neighborhood.augment import (
    BRIGHTNESS,
    CONTRAST,
    HUE,
    SATURATION,
    AugmentConfig,
    BatchAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    hsv_to_rgb,
    rgb_to_hsv,
    to_grayscale,
)

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
NO_JITTER: dict[str, Any] = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, grayscale_p=0.0)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images_u8(n: int = 6, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), generator=gen(seed), dtype=torch.uint8)


def normalized(x: torch.Tensor, mean: list[float] = MEAN, std: list[float] = STD) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def identity_config(**overrides: Any) -> AugmentConfig:
    """Crop the whole (square) image, no flip, no colour change."""
    return AugmentConfig(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], **{**NO_JITTER, **overrides})


# --- shapes, identity, determinism ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_output_shape_dtype_device(dtype: torch.dtype) -> None:
    x = images_u8(5, 3, 12, 10)
    x = x if dtype == torch.uint8 else (x.to(dtype) / 255)
    augment = BatchAugment(AugmentConfig(crop_size=6), MEAN, STD)
    for out in (augment.train(x, gen()), augment.test(x)):
        assert out.shape == (5, 3, 6, 6)
        assert out.dtype == torch.float32
        assert out.device == x.device
    # crop_size None: the input's height, square.
    assert BatchAugment(AugmentConfig(), [], []).train(x, gen()).shape == (5, 3, 12, 12)


def test_identity_when_randomness_disabled() -> None:
    x = images_u8(4, 3, 8, 8)
    out = BatchAugment(identity_config(), MEAN, STD).train(x, gen())
    torch.testing.assert_close(out, normalized(x.float() / 255), atol=1e-5, rtol=0)


def test_identity_non_square_ratio_with_one_channel() -> None:
    # ratio exactly W/H keeps the whole 6×9 image; resized to 6×6 it equals test()'s resize.
    x = images_u8(3, 1, 6, 9)
    config = AugmentConfig(crop_scale=[1.0, 1.0], crop_ratio=[1.5, 1.5], **NO_JITTER)
    augment = BatchAugment(config, [0.5], [0.25])
    assert (augment.sample(3, 6, 9, gen()).box == torch.tensor([0, 0, 6, 9])).all()
    torch.testing.assert_close(augment.train(x, gen()), augment.test(x), atol=1e-5, rtol=0)


def test_same_seed_same_output_different_seed_different() -> None:
    x = images_u8(8, 3, 16, 16)
    augment = BatchAugment(AugmentConfig(crop_size=8, hflip_p=0.5), MEAN, STD)
    first = augment.train(x, gen(1))
    assert torch.equal(first, augment.train(x, gen(1)))
    assert not torch.allclose(first, augment.train(x, gen(2)))


def test_uint8_and_float_inputs_agree() -> None:
    x = images_u8(6, 3, 10, 10)
    augment = BatchAugment(AugmentConfig(crop_size=7, hflip_p=0.5), MEAN, STD)
    torch.testing.assert_close(augment.train(x, gen(3)), augment.train(x.float() / 255, gen(3)), atol=1e-6, rtol=0)
    torch.testing.assert_close(augment.test(x), augment.test(x.float() / 255), atol=1e-6, rtol=0)


def test_no_statistics_means_no_normalization() -> None:
    x = images_u8(2, 3, 8, 8)
    out = BatchAugment(identity_config(), [], []).train(x, gen())
    torch.testing.assert_close(out, x.float() / 255, atol=1e-5, rtol=0)


# --- crops ------------------------------------------------------------------------------------


def blocks(image: torch.Tensor, side: int) -> torch.Tensor:
    """Every contiguous side×side window of C×H×W as (H-side+1)·(W-side+1) × C×side×side."""
    windows = image.unfold(1, side, 1).unfold(2, side, 1)  # C × i × j × side × side
    return windows.permute(1, 2, 0, 3, 4).reshape(-1, image.shape[0], side, side)


@pytest.mark.parametrize("hflip_p", [0.0, 1.0])
def test_fixed_size_crop_is_an_exact_input_window(hflip_p: float) -> None:
    # 8×8 distinct values; area 1/4 and ratio 1 force 4×4 boxes, resampled 1:1 to 4×4.
    image = (torch.arange(64, dtype=torch.float32) / 63).view(1, 1, 8, 8)
    x = image.expand(32, 1, 8, 8)
    config = AugmentConfig(crop_size=4, crop_scale=[0.25, 0.25], crop_ratio=[1.0, 1.0], hflip_p=hflip_p, **NO_JITTER)
    augment = BatchAugment(config, [], [])
    params = augment.sample(32, 8, 8, gen(5))
    out = augment.apply(x, params)
    candidates = blocks(image[0], 4)
    if hflip_p:
        candidates = candidates.flip(-1)
    for n in range(32):
        distance = (candidates - out[n]).abs().amax(dim=(1, 2, 3))
        assert distance.min() < 1e-5, f"sample {n} is no 4×4 window of the input"
        top, left, h, w = params.box[n].tolist()
        assert (h, w) == (4, 4)
        assert distance.argmin().item() == top * 5 + left  # the window the drawn box names
    assert len({tuple(box) for box in params.box.tolist()}) > 5  # positions vary


def test_fallback_is_the_center_crop_clipped_to_the_ratio() -> None:
    # A full-area square never fits 8×12 (w = h = round(√96) = 10 > 8), so every attempt fails
    # and torchvision's fallback takes the centered 8×8 (ratio bound 1).
    x = images_u8(4, 3, 8, 12)
    augment = BatchAugment(identity_config(crop_size=8), [], [])
    assert (augment.sample(4, 8, 12, gen()).box == torch.tensor([0, 2, 8, 8])).all()
    torch.testing.assert_close(augment.train(x, gen()), x[..., 2:10].float() / 255, atol=1e-5, rtol=0)


def test_drawn_boxes_fit_and_respect_scale_and_ratio() -> None:
    config = AugmentConfig(crop_scale=[0.2, 0.6], crop_ratio=[0.5, 2.0])
    params = BatchAugment(config, [], []).sample(2000, 32, 40, gen(7))
    top, left, h, w = params.box.unbind(dim=1)
    assert (h > 0).all() and (w > 0).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 40).all()
    area = (h * w).float() / (32 * 40)
    assert area.min() > 0.2 - 0.03 and area.max() < 0.6 + 0.03  # up to rounding of w and h
    ratio = w.float() / h.float()
    assert ratio.min() > 0.5 * 0.85 and ratio.max() < 2.0 / 0.85
    # Offsets are uniform over the positions that fit: both extremes occur.
    assert (top == 0).any() and (top + h == 32).any()


# --- colour ops -------------------------------------------------------------------------------


def test_grayscale_p_one_gives_luma_in_three_channels() -> None:
    x = images_u8(4, 3, 8, 8)
    out = BatchAugment(identity_config(grayscale_p=1.0), [], []).train(x, gen())
    r, g, b = (x.float() / 255).unbind(dim=1)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    for channel in range(3):
        torch.testing.assert_close(out[:, channel], luma, atol=1e-5, rtol=0)


def test_grayscale_is_a_no_op_for_one_channel() -> None:
    x = images_u8(3, 1, 8, 8)
    out = BatchAugment(identity_config(grayscale_p=1.0), [], []).train(x, gen())
    torch.testing.assert_close(out, x.float() / 255, atol=1e-5, rtol=0)


def test_brightness_scales_each_sample_by_one_factor_in_range() -> None:
    x = 0.1 + 0.5 * torch.rand(16, 3, 8, 8, generator=gen(1))  # ≤ 0.6·1.5: no clamping
    augment = BatchAugment(identity_config(brightness=0.5), [], [])
    out = augment.train(x, gen(2))
    ratio = (out / x).view(16, -1)
    factor = ratio[:, 0]
    torch.testing.assert_close(ratio, factor[:, None].expand_as(ratio), atol=1e-5, rtol=0)
    assert (factor >= 0.5 - 1e-6).all() and (factor <= 1.5 + 1e-6).all()
    assert factor.std() > 0.05  # drawn per sample
    torch.testing.assert_close(factor, augment.sample(16, 8, 8, gen(2)).factors[:, BRIGHTNESS])


def test_jitter_factors_fill_torchvisions_ranges() -> None:
    # brightness 1.5 clips its lower bound at 0, as torchvision's max(0, 1 - v) does.
    config = AugmentConfig(brightness=1.5, contrast=0.4, saturation=0.2, hue=0.3, grayscale_p=0.25, hflip_p=0.5)
    params = BatchAugment(config, [], []).sample(4000, 8, 8, gen(10))
    low, high = params.factors.amin(dim=0), params.factors.amax(dim=0)
    expected_low, expected_high = torch.tensor([0.0, 0.6, 0.8, -0.3]), torch.tensor([2.5, 1.4, 1.2, 0.3])
    torch.testing.assert_close(low, expected_low, atol=0.01, rtol=0)
    torch.testing.assert_close(high, expected_high, atol=0.01, rtol=0)
    assert (low >= expected_low - 1e-6).all() and (high <= expected_high + 1e-6).all()
    assert abs(params.flip.float().mean().item() - 0.5) < 0.03
    assert abs(params.gray.float().mean().item() - 0.25) < 0.03
    assert (params.order.sort(dim=1).values == torch.arange(4)).all()  # each row a permutation


def test_hsv_round_trip_and_red_to_green() -> None:
    x = torch.rand(4, 3, 8, 8, generator=gen(3))
    x[0, :, 0, 0] = torch.tensor([0.5, 0.5, 0.5])  # grey: chroma 0
    x[0, :, 0, 1] = 0.0  # black: value 0
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    green = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    blue = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(adjust_hue(red, torch.tensor([1 / 3])), green, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(red, torch.tensor([-1 / 3])), blue, atol=1e-5, rtol=0)


def test_saturation_zero_is_gray_and_one_is_identity() -> None:
    x = torch.rand(3, 3, 8, 8, generator=gen(4))
    torch.testing.assert_close(adjust_saturation(x, torch.zeros(3)), to_grayscale(x).expand_as(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_saturation(x, torch.ones(3)), x, atol=1e-6, rtol=0)
    # Saturation 2 pushes channels away from the grey, by twice their distance until clamped.
    doubled = adjust_saturation(x, torch.full((3,), 2.0))
    torch.testing.assert_close(doubled, (2 * x - to_grayscale(x)).clamp(0, 1), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "fn, reference, factors, atol",
    [
        (adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.4], 1e-6),
        # torchvision's luma uses 0.2989 for red where ours uses 0.299.
        (adjust_contrast, TF.adjust_contrast, [0.0, 0.6, 1.4], 1e-3),
        (adjust_saturation, TF.adjust_saturation, [0.0, 0.6, 1.4], 1e-3),
        (adjust_hue, TF.adjust_hue, [-0.5, -0.2, 0.4], 1e-5),
    ],
)
def test_colour_ops_match_torchvision(fn: Any, reference: Any, factors: list[float], atol: float) -> None:
    x = torch.rand(3, 3, 6, 6, generator=gen(5))
    out = fn(x, torch.tensor(factors))
    for n, factor in enumerate(factors):
        torch.testing.assert_close(out[n], reference(x[n], factor), atol=atol, rtol=0)


def test_jitter_applies_each_samples_own_order() -> None:
    # Reference: torchvision's ops sample by sample in the drawn order.
    x = torch.rand(24, 3, 6, 6, generator=gen(6))
    augment = BatchAugment(identity_config(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.4), [], [])
    params = augment.sample(24, 6, 6, gen(7))
    out = augment.apply(x, params)
    ops = {
        BRIGHTNESS: TF.adjust_brightness,
        CONTRAST: TF.adjust_contrast,
        SATURATION: TF.adjust_saturation,
        HUE: TF.adjust_hue,
    }
    for n in range(24):
        expected = x[n]
        for op in params.order[n].tolist():
            expected = ops[op](expected, params.factors[n, op].item())
        torch.testing.assert_close(out[n], expected, atol=2e-3, rtol=0)
    assert len({tuple(order) for order in params.order.tolist()}) > 5  # orders vary per sample


def test_one_channel_jitter_only_changes_brightness_and_contrast() -> None:
    x = 0.2 + 0.4 * torch.rand(8, 1, 6, 6, generator=gen(8))
    augment = BatchAugment(identity_config(saturation=0.9, hue=0.5), [], [])
    torch.testing.assert_close(augment.train(x, gen()), x, atol=1e-5, rtol=0)
    augment = BatchAugment(identity_config(contrast=0.5), [], [])
    params = augment.sample(8, 6, 6, gen(9))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    expected = ((x - mean) * params.factors[:, CONTRAST].view(-1, 1, 1, 1) + mean).clamp(0, 1)
    torch.testing.assert_close(augment.apply(x, params), expected, atol=1e-5, rtol=0)


# --- test-time views ---------------------------------------------------------------------------


def test_test_view_resizes_bilinearly_then_normalizes() -> None:
    x = images_u8(3, 3, 10, 14)
    out = BatchAugment(AugmentConfig(crop_size=7), MEAN, STD).test(x)
    resized = torch.nn.functional.interpolate(x.float() / 255, size=(7, 7), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, normalized(resized), atol=1e-5, rtol=0)
    same = images_u8(3, 3, 8, 8)
    torch.testing.assert_close(BatchAugment(AugmentConfig(), MEAN, STD).test(same), normalized(same.float() / 255))


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("crop_size", 0),
        ("crop_scale", [0.0, 1.0]),
        ("crop_scale", [0.8, 0.2]),
        ("crop_scale", [0.2, 1.5]),
        ("crop_scale", [0.5]),
        ("crop_ratio", [0.0, 1.0]),
        ("crop_ratio", [2.0, 1.0]),
        ("brightness", -0.1),
        ("contrast", -1.0),
        ("saturation", -0.5),
        ("hue", 0.6),
        ("hue", -0.1),
        ("grayscale_p", 1.5),
        ("hflip_p", -0.1),
    ],
)
def test_bad_config_raises_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"augment.{field} "):
        AugmentConfig(**{field: value})


def test_bad_statistics_and_channel_mismatch_raise() -> None:
    with pytest.raises(ConfigError, match="std"):
        BatchAugment(AugmentConfig(), [0.5, 0.5], [0.5])
    with pytest.raises(ConfigError, match="std"):
        BatchAugment(AugmentConfig(), [0.5], [0.0])
    with pytest.raises(ConfigError, match="channels"):
        BatchAugment(AugmentConfig(), MEAN, STD).train(images_u8(2, 1, 8, 8), gen())


# --- devices ------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_for_the_same_generator_state() -> None:
    x = images_u8(8, 3, 16, 16)
    augment = BatchAugment(AugmentConfig(crop_size=8, hflip_p=0.5), MEAN, STD)
    cpu = augment.train(x, gen(11))
    cuda = augment.train(x.cuda(), gen(11))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)
    torch.testing.assert_close(augment.test(x.cuda()).cpu(), augment.test(x), atol=1e-5, rtol=0)
