"""EdgeFool: L0 smoothing, the filter modules, and the protector itself.

Everything runs on 16 x 16 synthetic images, tiny filters and a handful of iterations.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from sklearn_privacy.image import EdgeFool, ImageClassifier, rgb_to_lab
from sklearn_privacy.image._edgefool_modules import (
    EdgeFoolFilter,
    _instance_norm,
    box_filter,
    cw_margin,
    enhance_lightness,
    fast_guided_filter,
    s_curve,
)
from sklearn_privacy.image._l0 import l0_smooth


# -- helpers ---------------------------------------------------------------------------
class EdgeEnergy(torch.nn.Module):
    """Two-class toy classifier: "detailed" when the mean absolute gradient of the grey
    image exceeds a threshold. Detail enhancement or smoothing flips it.

    It computes in float64 (its logits too), so that a float64 EdgeFool run has no
    float32 sums in the loop."""

    def __init__(self, threshold):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float64))

    def forward(self, x):
        g = x.double().mean(dim=1)
        energy = (g[:, 1:] - g[:, :-1]).abs().mean(dim=(1, 2)) + (
            g[:, :, 1:] - g[:, :, :-1]
        ).abs().mean(dim=(1, 2))
        return 100.0 * torch.stack([self.threshold.expand_as(energy), energy], dim=1)


def _energy(images):
    g = images.astype(np.float64).mean(axis=-1) / (255.0 if images.dtype == np.uint8 else 1.0)
    return np.abs(np.diff(g, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(g, axis=2)).mean(
        axis=(1, 2)
    )


def _piecewise_images(n, seed, noise=0.03, size=16):
    """Three flat regions per image plus a little noise, as uint8."""
    rng = np.random.default_rng(seed)
    base = np.zeros((n, size, size, 3))
    base[:, :, size // 2 :] = rng.random((n, 1, 1, 3))
    base[:, :, : size // 2] = rng.random((n, 1, 1, 3))
    base[:, size // 4 : 3 * size // 4, 3:6] = rng.random((n, 1, 1, 3))
    noisy = np.clip(base + noise * rng.standard_normal(base.shape), 0, 1)
    return (noisy * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def images():
    return _piecewise_images(6, seed=0)


@pytest.fixture(scope="module")
def classifier(images):
    return EdgeEnergy(1.15 * np.median(_energy(images)))


FAST = dict(n_channels=8, mse_threshold=2e-3, random_state=0, device="cpu")


def fit_diagnose(ef, X, **fit_params):
    """fit, then transform_with_diagnostics: the protected images and the diagnostics."""
    return ef.fit(X, **fit_params).transform_with_diagnostics(X)


def run_float64(ef, X):
    """fit, then optimise in float64 (the filter converted): images and diagnostics.

    In float32 the batched and sequential runs differ by summation order (grouped or
    plain convolutions, batched FFTs, the CPU's vector kernels), which the optimisation
    amplifies: comparing batch layouts exactly is meaningful only in float64."""
    ef.fit(X)
    ef.filter_.double()
    return ef.transform_with_diagnostics(X)


# -- L0 smoothing -----------------------------------------------------------------------
def _l0_reference(image, lam=0.02, kappa=2.0, beta_max=1e5):
    """Xu et al.'s solver written out plainly for one (H, W, C) float64 image."""
    S = image.copy()
    H, W, _ = S.shape
    kx = np.zeros((H, W))
    kx[0, 0], kx[0, 1] = -1.0, 1.0
    ky = np.zeros((H, W))
    ky[0, 0], ky[1, 0] = -1.0, 1.0
    denorm2 = np.abs(np.fft.fft2(kx)) ** 2 + np.abs(np.fft.fft2(ky)) ** 2
    normin1 = np.fft.fft2(S, axes=(0, 1))
    beta = 2 * lam
    while beta < beta_max:
        h = np.concatenate([np.diff(S, axis=1), S[:, :1] - S[:, -1:]], axis=1)
        v = np.concatenate([np.diff(S, axis=0), S[:1] - S[-1:]], axis=0)
        flat = (h**2 + v**2).sum(axis=2) < lam / beta
        h[flat] = 0
        v[flat] = 0
        normin2 = np.concatenate([h[:, -1:] - h[:, :1], -np.diff(h, axis=1)], axis=1)
        normin2 = normin2 + np.concatenate([v[-1:] - v[:1], -np.diff(v, axis=0)], axis=0)
        fs = (normin1 + beta * np.fft.fft2(normin2, axes=(0, 1))) / (1 + beta * denorm2)[..., None]
        S = np.real(np.fft.ifft2(fs, axes=(0, 1)))
        beta *= kappa
    return S


def test_l0_matches_reference_loop_and_is_batched():
    imgs = _piecewise_images(3, seed=1, noise=0.05, size=12)[:, :, :10] / 255.0  # 12 x 10
    out = l0_smooth(torch.from_numpy(imgs).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    for i in range(3):
        np.testing.assert_allclose(out[i], _l0_reference(imgs[i]), atol=1e-9)


def test_l0_keeps_piecewise_constant_and_flattens_noise():
    clean = _piecewise_images(4, seed=2, noise=0.0) / 255.0
    t_clean = torch.from_numpy(clean).permute(0, 3, 1, 2)
    change = (l0_smooth(t_clean) - t_clean).abs()
    # Nearly unchanged: edges kept; only a thin, low-contrast bar loses a little contrast.
    assert change.mean() < 0.005 and change.max() < 0.05
    gen = torch.Generator().manual_seed(0)
    noisy = t_clean + 0.03 * torch.randn(t_clean.shape, generator=gen, dtype=t_clean.dtype)
    smoothed = l0_smooth(noisy)
    assert (smoothed - t_clean).abs().mean() < 0.25 * (noisy - t_clean).abs().mean()
    # Far fewer non-zero gradients than the noisy input.
    grads = lambda t: ((t[..., 1:] - t[..., :-1]).abs() > 1e-3).float().mean()
    assert grads(smoothed) < 0.3 * grads(noisy)


def test_l0_rejects_bad_input():
    with pytest.raises(ValueError, match="N, C, H, W"):
        l0_smooth(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="kappa"):
        l0_smooth(torch.zeros(1, 3, 8, 8), kappa=1.0)


# -- modules -----------------------------------------------------------------------------
def test_filter_starts_as_identity_and_bank_equals_single_filters():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    single = EdgeFoolFilter(1, generator=torch.Generator().manual_seed(1))
    assert (single(x) - x).abs().max() < 1e-5
    with torch.no_grad():
        for p in single.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    bank = EdgeFoolFilter(4)
    with torch.no_grad():
        for pb, ps in zip(bank.parameters(), single.parameters()):
            pb.copy_(ps.expand_as(pb))
        bank.norm_w1_2[1] += 0.5  # filter 1 differs from the others
    out = bank(x)
    expected = single(x)
    for i in (0, 2, 3):
        torch.testing.assert_close(out[i], expected[i], atol=1e-5, rtol=0)
    assert (out[1] - expected[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="bank of 4 filters"):
        bank(x[:3])


def test_instance_norm_gradient_for_one_image_with_channels_last_gradient():
    # The layout that breaks F.instance_norm's backward on torch 2.13 (CPU): one image
    # and a channels-last incoming gradient (e.g. from a permuted (N, H, W, C) array).
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 8, 6, 5, dtype=torch.float64, generator=gen)
    weight = torch.rand(2, 6, 5, 8, dtype=torch.float64, generator=gen).permute(0, 3, 1, 2)

    def grad(n):
        xx = x[:n].clone().requires_grad_()
        return torch.autograd.grad((_instance_norm(xx) * weight[:n]).sum(), xx)[0]

    torch.testing.assert_close(grad(1)[0], grad(2)[0])


def test_box_and_guided_filter():
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sums = box_filter(x, 2)
    i, j = 3, 0
    np.testing.assert_allclose(sums[1, 2, i, j].item(), x[1, 2, i - 2 : i + 3, 0:3].sum().item())
    # Guided by itself, the filter returns its input; a constant guide returns local means.
    guided = fast_guided_filter(x, x, x, radius=1, eps=1e-8)
    torch.testing.assert_close(guided, x, atol=1e-5, rtol=0)
    const = torch.ones_like(x)
    means = box_filter(x, 1) / box_filter(torch.ones_like(x), 1)
    torch.testing.assert_close(fast_guided_filter(const, x, const, radius=1), means)


def test_s_curve_and_enhancement():
    d = torch.tensor([0.0, 1e-4, 10.0, -10.0], dtype=torch.float64)
    s = s_curve(d, 15.0)
    assert s[1].item() / 1e-4 == pytest.approx(3.75, rel=1e-4)  # slope 15 / 4
    np.testing.assert_allclose(s[2:].numpy(), [0.5, -0.5], atol=1e-12)  # saturation +-50 L*
    gen = torch.Generator().manual_seed(0)
    x = 0.35 + 0.3 * torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(enhance_lightness(x, x), x, atol=1e-9, rtol=0)
    smooth = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    out = enhance_lightness(x, smooth)
    lab_in, lab_out, lab_s = rgb_to_lab(x), rgb_to_lab(out), rgb_to_lab(smooth)
    inside = (out > 1e-6).all(dim=1) & (out < 1 - 1e-6).all(dim=1)  # not clipped to the gamut
    assert inside.float().mean() > 0.3
    # Chroma kept; L* = L_s + 100 * sig((L - L_s) / 100).
    chroma_mask = inside[:, None].expand(-1, 2, -1, -1)
    torch.testing.assert_close(
        lab_out[:, 1:][chroma_mask], lab_in[:, 1:][chroma_mask], atol=1e-6, rtol=0
    )
    expected_l = (lab_s[:, 0] + 100 * s_curve((lab_in[:, 0] - lab_s[:, 0]) / 100)).clamp(0, 100)
    torch.testing.assert_close(lab_out[:, 0][inside], expected_l[inside], atol=1e-6, rtol=0)


def test_cw_margin():
    logits = torch.tensor([[3.0, 1.0, 2.5], [0.0, 2.0, 1.0]])
    labels = torch.tensor([0, 2])
    torch.testing.assert_close(cw_margin(logits, labels), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(cw_margin(logits, labels, confidence=2.0), torch.tensor([0.5, -1.0]))


# -- EdgeFool ----------------------------------------------------------------------------
def test_batched_equals_sequential_in_float64(images, classifier):
    # The bank (refill, compaction, per-image Adam state and step counts, stopping
    # mask) makes each image follow the trajectory it follows alone: in float64, where
    # summation order cannot be amplified into different 8-bit images, the batched
    # runs equal the sequential one. batch_size=4: refilled once the first four are
    # done; 5: the sixth image joins images half-way through their optimisation, and
    # the bank is compacted as they finish.
    runs = {bs: run_float64(EdgeFool(classifier, max_iter=40, batch_size=bs, **FAST), images)
            for bs in (5, 4, 1)}
    out_seq, diag_seq = runs[1]
    # Images finish at different steps, so the bank is refilled and compacted.
    assert len(np.unique(diag_seq.n_iter)) > 1 and diag_seq.success.all()
    assert diag_seq.n_iter[4] < diag_seq.n_iter[:4].min()  # frees a row for image 5
    for batch_size in (5, 4):
        out, diag = runs[batch_size]
        np.testing.assert_array_equal(diag.n_iter, diag_seq.n_iter)
        np.testing.assert_array_equal(diag.success, diag_seq.success)
        # Equal up to a rounding tie of the final 8-bit quantisation.
        diff = np.abs(out.astype(int) - out_seq)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.001


def test_finished_images_stop_updating(images, classifier):
    out, diag = run_float64(EdgeFool(classifier, max_iter=40, batch_size=6, **FAST), images)
    early = int(np.argmin(diag.n_iter))
    assert diag.n_iter[early] < diag.n_iter.max()
    # The early image comes back as it was when it met the test: exactly what a run
    # forced to stop at that step returns, while the others went on being optimised.
    alone = EdgeFool(classifier, max_iter=int(diag.n_iter[early]), batch_size=1, **FAST)
    out_alone, _ = run_float64(alone, images[early : early + 1])
    diff = np.abs(out_alone[0].astype(int) - out[early])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.001
    late = int(np.argmax(diag.n_iter))
    cut = EdgeFool(classifier, max_iter=int(diag.n_iter[early]), batch_size=1, **FAST)
    out_cut, _ = run_float64(cut, images[late : late + 1])
    assert np.abs(out_cut[0].astype(int) - out[late]).max() > 2


def test_success_is_checked_on_the_returned_images(images, classifier):
    # Deployment preprocessing: resize to 12 x 12 before the classifier.
    wrapped = ImageClassifier(classifier, input_size=12, device="cpu")
    ef = EdgeFool(wrapped, max_iter=30, batch_size=6, **FAST)
    out, diag = fit_diagnose(ef, images)
    assert out.dtype == np.uint8 and out.shape == images.shape
    deployed = ImageClassifier(classifier, input_size=12, device="cpu")
    np.testing.assert_array_equal(diag.success, deployed.predict(out) != deployed.predict(images))
    assert diag.success.any()
    # Float in, float32 out on the 8-bit grid.
    out_f = ef.transform(images / 255.0)
    assert out_f.dtype == np.float32
    np.testing.assert_allclose(out_f * 255, np.round(out_f * 255), atol=1e-3)
    np.testing.assert_allclose(out_f * 255, out, atol=1e-3)


def test_universal_filter_is_trained_once_and_applied_in_one_pass(images, classifier):
    ef = EdgeFool(classifier, mode="universal", max_iter=12, batch_size=3, **FAST)
    ef.fit(images)
    # 12 steps are too few for every image to meet the stopping test in one epoch.
    assert ef.n_iter_ == 12 and not ef.converged_ and ef.filter_.n_filters == 1
    identity = EdgeFoolFilter(1, channels=8)
    x = torch.from_numpy(images / 255.0).float().permute(0, 3, 1, 2)
    assert (ef.filter_(x) - identity(x)).abs().max() > 1e-3  # trained away from identity
    before = {n: p.detach().clone() for n, p in ef.filter_.named_parameters()}
    calls = []
    hook = ef.filter_.register_forward_hook(lambda *args: calls.append(1))
    test = _piecewise_images(5, seed=7)
    ef.set_params(batch_size=8)
    out = ef.transform(test)
    hook.remove()
    assert len(calls) == 1  # one forward pass for all 5 images
    for n, p in ef.filter_.named_parameters():
        torch.testing.assert_close(p, before[n])
    with torch.no_grad():
        xt = torch.from_numpy(test / 255.0).float().permute(0, 3, 1, 2)
        expected = (enhance_lightness(xt, ef.filter_(xt)) * 255).round().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, expected, atol=1.0)
    _, diag = ef.transform_with_diagnostics(test)
    assert out.dtype == np.uint8 and diag.success.shape == (5,)
    np.testing.assert_array_equal(diag.n_iter, np.zeros(5))  # transform does not optimise
    # Any image size: the filter is fully convolutional; lists come back as lists.
    mixed = ef.transform([test[0], test[1, :12, :10]])
    assert isinstance(mixed, list) and mixed[1].shape == (12, 10, 3)
    # Pickles and gives the same images.
    clone = pickle.loads(pickle.dumps(ef))
    np.testing.assert_array_equal(clone.transform(test), out)


def test_universal_fit_stops_after_an_epoch_that_meets_the_test(images, classifier):
    # A loose MSE threshold: the filter soon fools every image within it.
    params = {**FAST, "mse_threshold": 5e-2, "n_channels": 4}
    ef = EdgeFool(classifier, mode="universal", max_iter=200, batch_size=3, **params)
    ef.fit(images[3:])
    assert ef.converged_ and 1 < ef.n_iter_ < 200
    # Stopping one step earlier leaves the flag down.
    short = EdgeFool(classifier, mode="universal", max_iter=ef.n_iter_ - 1, batch_size=3,
                     **params).fit(images[3:])
    assert short.n_iter_ == ef.n_iter_ - 1 and not short.converged_


def test_universal_mode_needs_one_image_size(images, classifier):
    ef = EdgeFool(classifier, mode="universal", max_iter=1, **FAST)
    with pytest.raises(ValueError, match="one size"):
        ef.fit([images[0], images[1, :8]])


def test_surrogate_is_trained_from_sensitive_features(images):
    from sklearn_privacy.adversaries import ImageCNNClassifier

    surrogate = ImageCNNClassifier(n_filters=2, input_size=8, max_epochs=1, early_stopping=False,
                                   batch_size=8, random_state=0, device="cpu")
    ef = EdgeFool(surrogate, max_iter=2, **FAST)
    with pytest.raises(ValueError, match="sensitive_features"):
        ef.fit(images)
    out, diag = fit_diagnose(ef, images, sensitive_features=np.array([0, 1] * 3))
    assert ef.classifier_.classifier is not surrogate  # a fitted clone
    assert ef.classifier_.classifier.classes_.tolist() == [0, 1]
    assert out.shape == images.shape and diag.n_iter.shape == (6,)


def test_black_box_classifier_is_rejected(images):
    class LabelsOnly(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.zeros(len(X), dtype=int)

        def __sklearn_is_fitted__(self):
            return True

    with pytest.raises(ValueError, match="white-box"):
        EdgeFool(LabelsOnly(), **FAST).fit(images)


def test_adam_step_clips_per_filter_or_not_at_all():
    from sklearn_privacy.image._edgefool import _adam_step

    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 5, generator=gen)
    grads = [torch.randn(2, 5, generator=gen) * scale for scale in (3.0, 0.001, 2.0)]
    for max_norm in (0.01, None):
        params = start.clone()
        exp_avg, exp_avg_sq = torch.zeros_like(params), torch.zeros_like(params)
        reference = [torch.nn.Parameter(start[i].clone()) for i in range(2)]
        optimisers = [torch.optim.Adam([p], lr=0.1) for p in reference]
        for step, g in enumerate(grads, start=1):
            _adam_step(params, g, exp_avg, exp_avg_sq, torch.full((2,), float(step),
                       dtype=torch.float64), lr=0.1, max_norm=max_norm)
            for i, (p, opt) in enumerate(zip(reference, optimisers)):
                p.grad = g[i].clone()
                if max_norm is not None:
                    torch.nn.utils.clip_grad_norm_([p], max_norm)
                opt.step()
        torch.testing.assert_close(params, torch.stack([p.detach() for p in reference]))
        if max_norm is None:
            unclipped = params
        else:
            clipped = params
    # Adam is scale-free per step, but not over a history of gradients of different sizes.
    assert not torch.allclose(clipped, unclipped, atol=1e-3)


def test_unclipped_gradients_option(images, classifier):
    runs = {}
    for max_norm in (0.01, None):
        ef = EdgeFool(classifier, max_iter=15, batch_size=6, max_grad_norm=max_norm,
                      mse_weight=0.0, **FAST)
        out, diag = run_float64(ef, images)  # float64: the outcome is not the CPU's
        runs[max_norm] = (out.astype(int), diag)
    # Without the smoothing term the MSE test is never met: all 15 steps are taken,
    # and both runs fool every image, along different trajectories.
    for _, diag in runs.values():
        np.testing.assert_array_equal(diag.n_iter, 15)
        assert diag.success.all()
    assert np.abs(runs[None][0] - runs[0.01][0]).max() > 0
    for bad in (0.0, -1.0, "none"):
        with pytest.raises(ValueError):
            EdgeFool(classifier, max_grad_norm=bad, **FAST).fit(images)


# -- fidelity budget (min_psnr) ------------------------------------------------------------
def test_min_psnr_floor_is_met_on_the_uint8_output(images, classifier):
    from sklearn_privacy.metrics import psnr

    free = EdgeFool(classifier, max_iter=40, batch_size=6, **FAST)
    out_free, free_diag = fit_diagnose(free, images)
    floor = float(np.ceil(np.max(psnr(images, out_free, average=False)))) + 3.0
    ef = EdgeFool(classifier, max_iter=40, batch_size=6, min_psnr=floor, **FAST)
    out, diag = fit_diagnose(ef, images)
    assert out.dtype == np.uint8 and out.shape == images.shape
    measured = psnr(images, out, average=False)
    # Every returned 8-bit image meets the floor the unconstrained filter misses ...
    assert np.all(measured >= floor) and np.all(psnr(images, out_free, average=False) < floor)
    np.testing.assert_allclose(diag.psnr, measured, rtol=1e-6)
    # ... and still fools the classifier; success is that of the returned images.
    np.testing.assert_array_equal(diag.success, classifier_predict(classifier, out)
                                  != classifier_predict(classifier, images))
    assert diag.success.mean() >= 0.5
    # An image stops as soon as it is misclassified within the budget.
    assert np.all(diag.n_iter[diag.success] < 40) and np.all(diag.success[diag.n_iter < 40])
    # Without the budget the PSNR is reported too.
    np.testing.assert_allclose(free_diag.psnr, psnr(images, out_free, average=False), rtol=1e-6)


def classifier_predict(classifier, images):
    return ImageClassifier(classifier, device="cpu").predict(images)


def test_min_psnr_with_float_input_resizing_classifier_and_universal_mode(images, classifier):
    from sklearn_privacy.metrics import psnr

    wrapped = ImageClassifier(classifier, input_size=12, device="cpu")
    ef = EdgeFool(wrapped, max_iter=30, batch_size=4, min_psnr=35.0, **FAST)
    out, diag = fit_diagnose(ef, images / 255.0)
    assert out.dtype == np.float32
    assert np.all(psnr(images / 255.0, out, average=False) >= 35.0)
    np.testing.assert_array_equal(diag.success, wrapped.predict(out) != wrapped.predict(images))
    uni = EdgeFool(classifier, mode="universal", max_iter=10, batch_size=3, min_psnr=35.0,
                   **FAST).fit(images)
    out_u, diag_u = uni.transform_with_diagnostics(images)
    assert np.all(psnr(images, out_u, average=False) >= 35.0)
    np.testing.assert_allclose(diag_u.psnr, psnr(images, out_u, average=False), rtol=1e-6)


def test_enforce_psnr_scales_back_a_residual_outside_the_budget():
    from sklearn_privacy.image._edgefool import _enforce_psnr, _psnr_levels

    rng = np.random.default_rng(0)
    ref = rng.integers(20, 236, (8, 8, 3)).astype(np.float64)
    inside = ref + rng.integers(-2, 3, ref.shape)
    np.testing.assert_array_equal(_enforce_psnr(inside, ref, 30.0), inside)  # untouched
    outside = np.clip(ref + rng.integers(-20, 21, ref.shape), 0, 255)
    assert _psnr_levels(outside, ref) < 30.0
    fixed = _enforce_psnr(outside, ref, 30.0)
    assert _psnr_levels(fixed, ref) >= 30.0 and np.all(fixed == np.round(fixed))
    # The largest scale that fits: the residual keeps its direction and most of its size.
    assert _psnr_levels(fixed, ref) < 30.5
    assert np.all(np.sign(fixed - ref) * np.sign(outside - ref) >= 0)
