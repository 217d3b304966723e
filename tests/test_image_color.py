"""sRGB <-> CIE Lab (D65) conversions and CIEDE2000."""

import numpy as np
import pytest
import torch

from sklearn_privacy.image import (
    ciede2000,
    lab_to_rgb,
    lab_to_rgb_array,
    rgb_to_lab,
    rgb_to_lab_array,
)

# Reference Lab values of sRGB primaries (D65, 2 degree observer).
REFERENCE = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
    ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
]

# Sharma, Wu & Dalal (2005), supplementary test data: (Lab1, Lab2, dE00).
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (58.0, 24.0, 15.0), 19.4535),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize("rgb, lab", REFERENCE)
def test_reference_colours(rgb, lab):
    t = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1)
    np.testing.assert_allclose(rgb_to_lab(t).flatten().numpy(), lab, atol=2e-3)
    np.testing.assert_allclose(rgb_to_lab_array(np.array(rgb)), lab, atol=2e-3)
    back = lab_to_rgb(torch.tensor(lab, dtype=torch.float64).view(1, 3, 1, 1))
    np.testing.assert_allclose(back.flatten().numpy(), rgb, atol=1e-4)


def test_round_trip_torch_and_shape():
    x = torch.rand(3, 3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lab = rgb_to_lab(x)
    assert lab.shape == x.shape and lab.dtype == x.dtype
    assert lab[:, 0].min() >= 0 and lab[:, 0].max() <= 100
    np.testing.assert_allclose(lab_to_rgb(lab).numpy(), x.numpy(), atol=1e-10, rtol=0)
    # float32 works too (what the protectors use).
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(x.float())).numpy(), x.float().numpy(), atol=1e-4, rtol=0)


def test_round_trip_uint8_every_level_is_exact():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4000, 3), dtype=np.uint8)
    rgb[:256] = np.arange(256)[:, None]  # the grey ramp, black and white included
    back = lab_to_rgb_array(rgb_to_lab_array(rgb))
    np.testing.assert_array_equal(np.round(back * 255).astype(np.uint8), rgb)


def test_lab_to_rgb_clips_out_of_gamut_unless_asked():
    lab = torch.tensor([50.0, 120.0, -120.0], dtype=torch.float64).view(1, 3, 1, 1)
    clipped = lab_to_rgb(lab)
    raw = lab_to_rgb(lab, clip=False)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert raw.min() < 0 or raw.max() > 1


def test_gradients_are_finite_and_correct():
    x = torch.tensor([0.0, 1.0, 0.002, 0.5, 0.04045, 0.9], dtype=torch.float64)
    x = x.view(2, 3, 1, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(rgb_to_lab(x).sum(), x)
    assert torch.all(torch.isfinite(grad))
    lab = torch.tensor([[0.0, 0.0, 0.0], [50.0, 200.0, -200.0]], dtype=torch.float64)
    lab = lab.view(2, 3, 1, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(lab_to_rgb(lab).sum(), lab)
    assert torch.all(torch.isfinite(grad))
    # Directional derivatives agree with central finite differences.
    gen = torch.Generator().manual_seed(1)
    x = (0.1 + 0.8 * torch.rand(2, 3, 3, 3, dtype=torch.float64, generator=gen)).requires_grad_(True)
    v = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    w = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    for f in (rgb_to_lab, lambda t: lab_to_rgb(rgb_to_lab(t)), lambda t: lab_to_rgb(t * 60.0 - 20.0)):
        (grad,) = torch.autograd.grad((f(x) * w).sum(), x)
        h = 1e-6
        with torch.no_grad():
            numeric = ((f(x + h * v) - f(x - h * v)) * w).sum() / (2 * h)
        np.testing.assert_allclose(float((grad * v).sum()), float(numeric), rtol=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        rgb_to_lab(torch.rand(2, 4, 3, 3))
    with pytest.raises(TypeError):
        rgb_to_lab(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="3 channels"):
        rgb_to_lab_array(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        ciede2000(np.zeros((2, 2)), np.zeros((2, 2)))


def test_ciede2000_sharma_pairs():
    lab1 = np.array([p[0] for p in SHARMA_PAIRS])
    lab2 = np.array([p[1] for p in SHARMA_PAIRS])
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    np.testing.assert_allclose(ciede2000(lab1, lab2), expected, atol=1e-4)
    # Symmetric, zero on identical colours, broadcasting over leading axes.
    np.testing.assert_allclose(ciede2000(lab2, lab1), expected, atol=1e-4)
    np.testing.assert_array_equal(ciede2000(lab1, lab1), 0.0)
    grid = ciede2000(lab1[:, None, :], lab2[None, :, :])
    assert grid.shape == (len(SHARMA_PAIRS), len(SHARMA_PAIRS))
    np.testing.assert_allclose(np.diag(grid), expected, atol=1e-4)
