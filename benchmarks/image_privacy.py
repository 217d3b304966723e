"""Image protectors on real data: ColorFool, ColorFool-r, P-FGSM, EdgeFool.

Besides the papers' algorithms it runs ColorFool-robust and ColorFool-robust-ensemble,
ColorFool with the robust acceptance options (``robust_transforms``, ``ensemble``;
extensions beyond the paper, see ``ROBUST_COLORFOOL``).

For CIFAR-10 (the private attribute is the class) and UTKFace (the private attribute is
gender) this benchmark

1. trains the attacked classifier (``ImageCNNClassifier(architecture="small")``) and two
   unseen architectures (``"wide"``, ``"resnet"``, trained separately) on the training
   split, with early stopping on a split of the training data;
2. draws ``--n-images`` test images that the attacked classifier labels correctly (the
   only images on which "success" means something; how many were drawn is reported);
3. protects them with each method and measures, always on the final uint8 images through
   the classifiers' deployment preprocessing (never inside the attack loop):

   - success on the attacked classifier (the true label changed), transfer to each
     unseen architecture (counted on the images that architecture labels correctly),
     success after JPEG quality 75, a 3x3 median filter and 4-bit re-quantisation;
   - ``top1_out`` / ``top3_out`` / ``top5_out`` (true class out of the top-k);
   - quality: PSNR, SSIM, CIEDE2000, L-inf and a NIQE-style naturalness distance to a
     model fitted on held-out clean images of the same data set;
   - throughput (images/s), and the speed-up over a sequential one-image-at-a-time run
     of the same algorithm on a small subset, with a check that both agree;

4. adds reference rows: Gaussian noise and Gaussian blur calibrated, image by image, to
   the PSNR each method reached (bisection on the noise / blur sigma), so a success rate
   can be read against what an equally strong but non-adversarial distortion does;
5. measures the adaptive attacker (DESIGN.md's headline privacy figure) for
   ``--adaptive-methods``: attackers (``"small"`` and ``"wide"`` with their own seed)
   retrained on ``--n-adaptive-train`` *protected* training images and tested on
   protected images of the test pool, beside the same attackers trained on clean images
   (static, and raw on clean test images). ``--methods`` with no name runs this part
   alone.

Every success figure is given on two subsets (``subset`` key): ``correct`` (all attacked
images, which the attacked classifier labels correctly) and ``confident`` (those where it
is also more than ``--confidence`` sure). Results go to ``benchmarks/results/`` as JSON
records (DESIGN.md, "Benchmark results format") and a Markdown report that states the
bars of the issue and whether this run meets them.

Run (about 30 minutes at the defaults on 2 CPU cores shared with other jobs, load 4-5,
plus about 20 for the two ColorFool-robust methods; ``--methods EdgeFool ColorFool``
alone: 23 minutes; the adaptive part about 80 more, of which ColorFool protecting 2,300
faces takes 27)::

    OMP_NUM_THREADS=1 python benchmarks/image_privacy.py

Scale up with ``--n-images``, ``--n-train``, ``--max-epochs``, ``--n-edgefool-*``,
``--edgefool-max-iter`` (the paper uses 5000); ``--edgefool-min-psnr 0`` runs EdgeFool
without its fidelity budget (the paper). ``--quick`` is a smoke test (two minutes).
"""

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sklearn_privacy.adversaries import ImageCNNClassifier
from sklearn_privacy.datasets import load_cifar10, load_utkface
from sklearn_privacy.image import (
    ColorFool,
    EdgeFool,
    HeuristicSegmenter,
    ImageClassifier,
    PrivateFGSM,
    topk_out_rate,
)
from sklearn_privacy.image._colorfool import ROBUST_TRANSFORMS
from sklearn_privacy.metrics import (
    attack_score,
    ciede2000_mean,
    fit_naturalness_model,
    naturalness_score,
    psnr,
    ssim,
)
from sklearn_privacy.evaluation import (
    RECORD_KEYS,
    environment_record,
    write_benchmark_records,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
ATTACKED = "small"
TRANSFER = ("wide", "resnet")
ROBUSTNESS = ("jpeg75", "median3", "quant4")
METHODS = ("ColorFool", "ColorFool-r", "ColorFool-robust", "ColorFool-robust-ensemble",
           "PrivateFGSM", "EdgeFool", "EdgeFool-universal")
#: ColorFool-robust: the paper's search with robust acceptance (beyond the paper): a trial
#: counts only if the attacked classifier is also fooled on these copies of it; images
#: with no such trial get the paper's output.
ROBUST_COLORFOOL = dict(robust_transforms=["jpeg", "median", "blur", "shift", "flip"],
                        on_failure="paper")
#: ColorFool-robust-ensemble also needs these extra surrogates fooled: the attacked
#: architecture trained with other seeds on the same images (never "wide" / "resnet").
ENSEMBLE_SEEDS = (1, 2)
#: The segmenter of each ColorFool row (``None``: ColorFool-r's global shift), shared by
#: the main rows and the adaptive part so both protect with the same settings.
COLORFOOL_SEGMENTERS = {"ColorFool": "heuristic", "ColorFool-r": None,
                        "ColorFool-robust": "heuristic",
                        "ColorFool-robust-ensemble": "heuristic"}
#: The adaptive attackers: these architectures, seeded apart from every other network,
#: trained on ``--n-adaptive-train`` *protected* training images (true labels) and tested
#: on protected test images; the same networks trained on the clean images give the raw
#: and static figures.
ADAPTIVE_ATTACKERS = ("small", "wide")
ADAPTIVE_SEED_OFFSET = 100
ADAPTIVE_METHODS = ("ColorFool", "ColorFool-r", "PrivateFGSM", "EdgeFool-universal")
_T0 = time.perf_counter()


def log(message):
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", flush=True)


# -- data -------------------------------------------------------------------------------
def load_data(name, args, rng):
    """Training images and labels, a test pool, and held-out reference images."""
    if name == "cifar10":
        root = args.data_dir / "cifar10"
        train = load_cifar10(root, subset="train", max_per_class=math.ceil(args.n_train / 10))
        test = load_cifar10(root, subset="test", max_per_class=args.n_pool_per_class)
        order = rng.permutation(len(test.target))
        n_ref = args.n_reference
        ref, pool = order[:n_ref], order[n_ref:]
        info = {
            "private_attribute": "class (10 classes)",
            "image_size": 32,
            "train": f"first {math.ceil(args.n_train / 10)} JPEGs per class of the train split",
            "pool": f"first {args.n_pool_per_class} test JPEGs per class, shuffled",
        }
        return (train.images, train.target, test.images[pool], test.target[pool],
                test.images[ref], list(train.target_names), info)
    if name == "utkface":
        faces = load_utkface(args.data_dir / "utkface" / "crop_part1", size=args.utk_size)
        order = rng.permutation(len(faces.gender))
        n_tr, n_ref = args.n_train, args.n_reference
        tr, ref, pool = order[:n_tr], order[n_tr : n_tr + n_ref], order[n_tr + n_ref :]
        pool = pool[: args.n_pool_per_class * 10]
        info = {
            "private_attribute": "gender (0 male, 1 female)",
            "image_size": args.utk_size,
            "train": f"{n_tr} random face chips of crop_part1 ({len(order)} in all), "
                     f"resized 200 -> {args.utk_size}",
            "pool": f"{len(pool)} other random face chips",
        }
        return (faces.images[tr], faces.gender[tr], faces.images[pool], faces.gender[pool],
                faces.images[ref], ["male", "female"], info)
    raise ValueError(name)


def make_classifier(arch, args, seed, *, max_epochs=None, patience=None):
    """An unfitted classifier of architecture ``arch`` with the benchmark's settings."""
    return ImageCNNClassifier(
        architecture=arch, n_filters=args.n_filters, input_size=args.input_size,
        max_epochs=args.max_epochs if max_epochs is None else max_epochs,
        patience=args.patience if patience is None else patience,
        lr=args.lr, random_state=seed, device=args.device,
    )


def train_models(X, y, args):
    models, info = {}, {}
    for arch in (ATTACKED,) + TRANSFER:
        t = time.perf_counter()
        clf = make_classifier(arch, args, args.seed).fit(X, y)
        models[arch] = clf
        info[arch] = {"fit_seconds": time.perf_counter() - t, "epochs": clf.n_iter_,
                      "best_epoch": clf.best_epoch_}
        log(f"  trained {arch}: {clf.n_iter_} epochs (best {clf.best_epoch_}) "
            f"in {info[arch]['fit_seconds']:.0f}s")
    return models, info


# -- transforms the images may meet after protection --------------------------------------
def _library_transform(name):
    """ColorFool's robust transform ``name`` applied to uint8 images (n, H, W, 3): the
    images are judged after exactly the transforms ``robust_transforms`` searches with
    (``"jpeg"``: PIL JPEG quality 75; ``"median"``: 3x3 median, reflected borders)."""
    transform = ROBUST_TRANSFORMS[name]

    def apply(images):
        levels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        out = transform(levels).round().clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1).numpy()

    return apply


def requantise(images, bits=4):
    levels = 2**bits - 1
    return np.round(np.round(images / 255.0 * levels) / levels * 255.0).astype(np.uint8)


TRANSFORMS = {"jpeg75": _library_transform("jpeg"), "median3": _library_transform("median"),
              "quant4": requantise}


# -- PSNR-matched references ----------------------------------------------------------------
def _psnr_u8(clean, out):
    diff = clean.astype(np.float64) - out.astype(np.float64)
    mse = np.mean(diff * diff, axis=(1, 2, 3)) / 255.0**2
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def _bisect(render, clean, target, lo, hi, n_steps=30):
    """Per-image sigma in [lo, hi] whose rendering has the PSNR ``target`` (vectorised)."""
    n = len(clean)
    lo, hi = np.full(n, lo, dtype=np.float64), np.full(n, hi, dtype=np.float64)
    finite = np.isfinite(target)
    for _ in range(n_steps):
        mid = (lo + hi) / 2.0
        above = _psnr_u8(clean, render(mid)) > target  # too little distortion: more sigma
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    sigma = np.where(finite, (lo + hi) / 2.0, 0.0)
    out = render(sigma)
    out[~finite] = clean[~finite]
    return out, sigma


def gaussian_noise_at_psnr(clean, target, seed):
    z = np.random.default_rng(seed).standard_normal(clean.shape)
    x = clean.astype(np.float64)

    def render(sigma):  # sigma in uint8 levels
        return np.clip(np.round(x + sigma[:, None, None, None] * z), 0, 255).astype(np.uint8)

    return _bisect(render, clean, target, 0.0, 128.0)


def gaussian_blur_at_psnr(clean, target):
    n, height, width, _ = clean.shape
    max_sigma = min(height, width) / 6.0
    radius = min(int(math.ceil(3 * max_sigma)), min(height, width) - 1)
    x = torch.from_numpy(clean).permute(0, 3, 1, 2).reshape(1, n * 3, height, width).double()
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)

    def render(sigma):  # sigma in pixels, one per image
        s = torch.as_tensor(np.maximum(sigma, 1e-3)).repeat_interleave(3)[:, None]
        k = torch.exp(-0.5 * (offsets[None] / s) ** 2)
        k = k / k.sum(dim=1, keepdim=True)
        y = F.pad(x, (radius, radius, radius, radius), mode="reflect")
        y = F.conv2d(y, k[:, None, :, None], groups=n * 3)
        y = F.conv2d(y, k[:, None, None, :], groups=n * 3)
        y = y.reshape(n, 3, height, width).permute(0, 2, 3, 1).numpy()
        return np.clip(np.round(y), 0, 255).astype(np.uint8)

    return _bisect(render, clean, target, 0.0, max_sigma)


# -- records ----------------------------------------------------------------------------------
class Recorder:
    """Collects benchmark records (RECORD_KEYS plus ``subset``, ``n`` and free extras)."""

    def __init__(self):
        self.records = []

    def add(self, dataset, protector, metric, value, *, attacker=None, mode=None,
            level="image", std=None, n_folds=1, chance=None, **extra):
        record = dict.fromkeys(RECORD_KEYS)
        record.update(dataset=dataset, protector=protector, metric=metric, attacker=attacker,
                      mode=mode, level=level, value=_num(value), std=_num(std),
                      n_folds=n_folds, chance=_num(chance))
        record.update({k: _num(v) for k, v in extra.items()})
        self.records.append(record)
        return record

    def rate(self, dataset, protector, metric, flags, mask, **kw):
        n = int(mask.sum())
        p = float(flags[mask].mean()) if n else float("nan")
        se = math.sqrt(p * (1 - p) / n) if n else float("nan")
        return self.add(dataset, protector, metric, p, std=se, n=n, **kw)

    def find(self, **query):
        return [r for r in self.records
                if all(r.get(k) == v for k, v in query.items())]

    def value(self, **query):
        found = self.find(**query)
        return found[0]["value"] if found else None


def _num(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


class Task:
    """One data set: the models, the attacked images and their labels."""

    def __init__(self, name, X, y, models, confidence, naturalness_model, n_classes):
        self.name = name
        self.X, self.y = X, y
        self.models = models
        self.attacked = ImageClassifier(models[ATTACKED], device=models[ATTACKED].device_)
        proba = models[ATTACKED].predict_proba(X)
        self.confident = proba.max(axis=1) > confidence
        self.correct = {arch: clf.predict(X) == y for arch, clf in models.items()}
        self.naturalness_model = naturalness_model
        self.n_classes = n_classes


def evaluate(rec, task, protector, out, idx=None, *, robustness=True, topk=True,
             quality=True, **extra):
    """Success, transfer, robustness, top-k and quality records of protected images."""
    idx = np.arange(len(task.X)) if idx is None else np.asarray(idx)
    clean, y = task.X[idx], task.y[idx]
    subsets = {"correct": np.ones(len(idx), dtype=bool), "confident": task.confident[idx]}
    ds = task.name
    for arch, clf in task.models.items():
        flags = clf.predict(out) != y
        mode = "static" if arch == ATTACKED else "transfer"
        for subset, mask in subsets.items():
            rec.rate(ds, protector, "success_rate", flags, mask & task.correct[arch][idx],
                     attacker=arch, mode=mode, subset=subset, **extra)
    if robustness:
        for tname in ROBUSTNESS:
            flags = task.models[ATTACKED].predict(TRANSFORMS[tname](out)) != y
            for subset, mask in subsets.items():
                rec.rate(ds, protector, f"success_rate_{tname}", flags, mask,
                         attacker=ATTACKED, mode="static", subset=subset, **extra)
    if topk:
        for k in (1, 3, 5):
            if k >= task.n_classes:
                continue  # with 2 classes the true class is always in the top 2
            for subset, mask in subsets.items():
                if mask.sum():
                    value = topk_out_rate(task.attacked, out[mask], y[mask], k=k)
                    rec.add(ds, protector, f"top{k}_out", value, attacker=ATTACKED,
                            mode="static", subset=subset, n=int(mask.sum()), **extra)
    values = {"psnr": psnr(clean, out, average=False)}
    if quality:
        values["ssim"] = ssim(clean, out, average=False)
        values["ciede2000"] = ciede2000_mean(clean, out, average=False)
        values["naturalness"] = naturalness_score(out, task.naturalness_model, average=False)
    for metric, v in values.items():
        finite = v[np.isfinite(v)]
        rec.add(ds, protector, metric, finite.mean() if finite.size else float("inf"),
                std=finite.std() if finite.size else None, subset="all", n=len(v),
                n_unchanged=int((~np.isfinite(v)).sum()) if metric == "psnr" else None,
                **extra)
    linf = np.abs(out.astype(np.int16) - clean.astype(np.int16)).max()
    rec.add(ds, protector, "linf", linf / 255.0, subset="all", n=len(idx),
            unit="[0, 1] pixel scale", **extra)
    return values["psnr"]


def references(rec, task, method, psnr_values, idx, seed):
    """Gaussian noise and blur at the PSNR ``method`` reached on each image."""
    clean = task.X[idx]
    for name, (out, sigma) in (
        ("GaussianNoise", gaussian_noise_at_psnr(clean, psnr_values, seed)),
        ("GaussianBlur", gaussian_blur_at_psnr(clean, psnr_values)),
    ):
        evaluate(rec, task, name, out, idx, robustness=False, topk=False, quality=False,
                 matched_to=method)
        rec.add(task.name, name, "sigma", float(np.mean(sigma)), std=float(np.std(sigma)),
                subset="all", n=len(idx), matched_to=method,
                unit="uint8 levels" if name == "GaussianNoise" else "pixels")


def timed(fn):
    result, wall, _ = timed_both(fn)
    return result, wall


def timed_both(fn):
    """``(result, wall seconds, CPU seconds of this process)``: on a machine shared with
    other jobs the CPU time is the steadier measure of the work done."""
    c, t = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t, time.process_time() - c


# -- the methods ----------------------------------------------------------------------------
def make_colorfool(clf, args, segmenter, **kw):
    """The benchmark's (unfitted) ColorFool against ``clf``."""
    return ColorFool(clf, segmenter=segmenter, n_trials=args.colorfool_trials,
                     random_state=args.seed, device=args.device, **kw)


def make_pfgsm(clf, args, **kw):
    """The benchmark's (unfitted) P-FGSM against ``clf``."""
    return PrivateFGSM(clf, random_state=args.seed, device=args.device, **kw)


def make_edgefool(clf, args, **kw):
    """The benchmark's (unfitted) EdgeFool against ``clf``; ``kw`` overrides."""
    params = dict(max_iter=args.edgefool_max_iter, random_state=args.seed,
                  device=args.device, batch_size=args.edgefool_batch_size)
    params.update(kw)
    return EdgeFool(clf, **params)


def fit_universal_edgefool(clf, args, train_X):
    """EdgeFool-universal: one filter trained on the first training images."""
    n_fit = min(args.n_edgefool_universal_train, len(train_X))
    uni = make_edgefool(clf, args, mode="universal", max_iter=args.edgefool_universal_steps,
                        batch_size=16)
    return uni.fit(train_X[:n_fit])


def run_colorfool(rec, task, args, name, sequential, **options):
    clf = task.models[ATTACKED]
    segmenter = COLORFOOL_SEGMENTERS[name]
    n_seq = min(args.n_sequential, len(task.X))

    def make(**kw):
        return make_colorfool(clf, args, segmenter, **options, **kw).fit(task.X[:1])

    cf = make()
    (out, diag), seconds = timed(lambda: cf.transform_with_diagnostics(task.X))
    log(f"  {name}: {len(out)} images in {seconds:.1f}s "
        f"(in-loop success {diag.success.mean():.3f}, median trials {np.median(diag.n_trials):.0f})")
    rec.add(task.name, name, "transform_per_second", len(out) / seconds, n=len(out),
            variant="batched")
    rec.add(task.name, name, "trials_mean", diag.n_trials.mean(), std=diag.n_trials.std(),
            n=len(out))
    rec.rate(task.name, name, "success_rate_in_loop", diag.success, np.ones(len(out), bool),
             attacker=ATTACKED, mode="static", subset="correct")
    if options:
        # Share of images whose returned trial passed the whole robust test (the others
        # fell back to the paper's acceptance).
        rec.rate(task.name, name, "robust_acceptance_rate", diag.robust_success,
                 np.ones(len(out), bool), attacker=ATTACKED, mode="static", subset="correct")
    if segmenter == "heuristic":
        # How much of the images the segmenter claims: the person region is never
        # recoloured, the others only within their natural colour ranges.
        masks = HeuristicSegmenter()(task.X.astype(np.float32) / 255.0)
        for region, mask in masks.items():
            rec.add(task.name, name, "mask_coverage", float(np.mean(mask)), subset="all",
                    n=len(task.X), region=region)
    psnr_values = evaluate(rec, task, name, out)
    references(rec, task, name, psnr_values, np.arange(len(out)), args.seed)
    if sequential and n_seq:
        sub = task.X[:n_seq]
        batched = make()
        (out_b, diag_b), t_b, c_b = timed_both(lambda: batched.transform_with_diagnostics(sub))
        seq = make(trial_batch_size=1, batch_size=1)
        (out_s, diag_s), t_s, c_s = timed_both(lambda: seq.transform_with_diagnostics(sub))
        same = np.all(out_b == out_s, axis=(1, 2, 3))
        log(f"  {name} sequential on {n_seq}: {t_s:.1f}s vs batched {t_b:.1f}s "
            f"(x{t_s / t_b:.1f}; CPU time {c_s:.1f}s vs {c_b:.1f}s, x{c_s / c_b:.1f}); "
            f"identical outputs {same.mean():.2f}")
        _speed_records(rec, task.name, name, n_seq, t_b, t_s, diag_b.success, diag_s.success,
                       same, unit="images", cpu=(c_b, c_s))


def _speed_records(rec, ds, name, n, t_b, t_s, ok_b, ok_s, same, unit, work=None,
                   cpu=None):
    work_b, work_s = (n, n) if work is None else work
    if cpu is not None:
        c_b, c_s = cpu
        rec.add(ds, name, "speedup_vs_sequential_cpu_time", (work_b / c_b) / (work_s / c_s),
                n=n, unit=unit)
    rec.add(ds, name, "transform_per_second", work_b / t_b, n=n, variant="batched_subset",
            unit=unit)
    rec.add(ds, name, "transform_per_second", work_s / t_s, n=n, variant="sequential",
            unit=unit)
    rec.add(ds, name, "speedup_vs_sequential", (work_b / t_b) / (work_s / t_s), n=n,
            unit=unit)
    rec.add(ds, name, "sequential_equal_success", float(np.mean(ok_b == ok_s)), n=n)
    rec.add(ds, name, "sequential_identical_output", float(np.mean(same)), n=n)


def run_pfgsm(rec, task, args, sequential):
    clf = task.models[ATTACKED]
    name = "PrivateFGSM"

    def make(**kw):
        return make_pfgsm(clf, args, **kw).fit(task.X[:1])

    pf = make()
    (out, diag), seconds = timed(lambda: pf.transform_with_diagnostics(task.X))
    hit = clf.predict(out) == diag.target
    log(f"  {name} (objective={pf.objective}): {len(out)} images in {seconds:.1f}s "
        f"(in-loop success {diag.success.mean():.3f}, median steps {np.median(diag.n_iter):.0f})")
    rec.add(task.name, name, "transform_per_second", len(out) / seconds, n=len(out),
            variant="batched", objective=pf.objective)
    rec.add(task.name, name, "iterations_mean", diag.n_iter.mean(), std=diag.n_iter.std(),
            n=len(out), objective=pf.objective)
    rec.rate(task.name, name, "success_rate_in_loop", diag.success, np.ones(len(out), bool),
             attacker=ATTACKED, mode="static", subset="correct", objective=pf.objective)
    if pf.objective == "paper":  # "topk" is untargeted: its target is the new top-1
        for subset, mask in (("correct", np.ones(len(out), bool)),
                             ("confident", task.confident)):
            rec.rate(task.name, name, "target_rate", hit, mask, attacker=ATTACKED,
                     mode="static", subset=subset)
    psnr_values = evaluate(rec, task, name, out)
    references(rec, task, name, psnr_values, np.arange(len(out)), args.seed)
    n_seq = min(args.n_sequential, len(task.X))
    if sequential and n_seq:
        sub = task.X[:n_seq]
        batched = make()
        out_b, t_b = timed(lambda: batched.transform(sub))
        seq = make(batch_size=1)
        out_s, t_s = timed(lambda: seq.transform(sub))
        same = np.all(out_b == out_s, axis=(1, 2, 3))
        log(f"  {name} sequential on {n_seq}: {t_s:.1f}s vs batched {t_b:.1f}s "
            f"(x{t_s / t_b:.1f}); identical outputs {same.mean():.2f}")
        _speed_records(rec, task.name, name, n_seq, t_b, t_s,
                       clf.predict(out_b) != task.y[:n_seq],
                       clf.predict(out_s) != task.y[:n_seq], same, unit="images")


def run_edgefool(rec, task, args, n_images, train_X, sequential):
    clf = task.models[ATTACKED]
    name = "EdgeFool"
    n_images = min(n_images, len(task.X))
    idx = np.arange(n_images)

    min_psnr = _min_psnr(args)
    extra = {} if min_psnr is None else {"min_psnr": min_psnr}
    max_grad_norm = _max_grad_norm(args)

    def make(**kw):
        return make_edgefool(clf, args, **kw)

    if n_images:
        ef = make(min_psnr=min_psnr, max_grad_norm=max_grad_norm).fit(task.X[:1])
        (out, diag), seconds = timed(lambda: ef.transform_with_diagnostics(task.X[idx]))
        log(f"  {name}: {n_images} images in {seconds:.1f}s (in-loop success "
            f"{diag.success.mean():.3f}, steps {np.median(diag.n_iter):.0f} median, "
            f"{(diag.n_iter >= args.edgefool_max_iter).sum()} at max_iter)")
        rec.add(task.name, name, "transform_per_second", n_images / seconds, n=n_images,
                variant="batched", max_iter=args.edgefool_max_iter, **extra)
        rec.add(task.name, name, "iterations_mean", diag.n_iter.mean(), std=diag.n_iter.std(),
                n=n_images, max_iter=args.edgefool_max_iter, **extra)
        rec.add(task.name, name, "seconds_per_image_step", seconds / max(diag.n_iter.sum(), 1),
                n=n_images, max_iter=args.edgefool_max_iter, **extra)
        rec.rate(task.name, name, "success_rate_in_loop", diag.success,
                 np.ones(n_images, bool), attacker=ATTACKED, mode="static", subset="correct",
                 max_iter=args.edgefool_max_iter, **extra)
        psnr_values = evaluate(rec, task, name, out, idx, max_iter=args.edgefool_max_iter, **extra)
        references(rec, task, name, psnr_values, idx, args.seed)
    n_seq = min(args.n_edgefool_sequential, len(task.X))
    if sequential and n_seq:
        # Same number of Adam steps for every image (the stopping test is switched off),
        # so the two runs do exactly the same work: steps per second are comparable.
        sub = task.X[:n_seq]
        steps = args.edgefool_speed_steps
        # (The paper's stopping test, switched off by the tiny MSE threshold; without the
        # fidelity budget, whose test is "misclassified" alone.)
        batched = make(max_iter=steps, mse_threshold=1e-30, batch_size=n_seq).fit(sub[:1])
        (out_b, diag_b), t_b, c_b = timed_both(lambda: batched.transform_with_diagnostics(sub))
        seq = make(max_iter=steps, mse_threshold=1e-30, batch_size=1).fit(sub[:1])
        (out_s, diag_s), t_s, c_s = timed_both(lambda: seq.transform_with_diagnostics(sub))
        same = np.all(out_b == out_s, axis=(1, 2, 3))
        max_diff = int(np.abs(out_b.astype(int) - out_s.astype(int)).max())
        log(f"  {name} sequential on {n_seq} x {steps} steps: {t_s:.1f}s vs batched "
            f"{t_b:.1f}s (x{t_s / t_b:.1f}); identical outputs {same.mean():.2f}, "
            f"max difference {max_diff} levels")
        _speed_records(rec, task.name, name, n_seq, t_b, t_s, diag_b.success, diag_s.success,
                       same, unit="images (fixed steps)", cpu=(c_b, c_s))
        rec.add(task.name, name, "sequential_max_level_difference", max_diff, n=n_seq,
                steps=steps)
    if args.edgefool_universal_steps > 0:
        uname = "EdgeFool-universal"
        n_fit = min(args.n_edgefool_universal_train, len(train_X))
        uni, fit_s = timed(lambda: fit_universal_edgefool(clf, args, train_X))
        (out, diag), seconds = timed(lambda: uni.transform_with_diagnostics(task.X))
        log(f"  {uname}: fitted on {n_fit} training images, {uni.n_iter_} steps in "
            f"{fit_s:.1f}s; {len(out)} images in {seconds:.2f}s (in-loop success "
            f"{diag.success.mean():.3f})")
        rec.add(task.name, uname, "fit_seconds", fit_s, n=n_fit, steps=int(uni.n_iter_))
        rec.add(task.name, uname, "transform_per_second", len(out) / seconds, n=len(out),
                variant="batched")
        psnr_values = evaluate(rec, task, uname, out)
        references(rec, task, uname, psnr_values, np.arange(len(out)), args.seed)


# -- adaptive attackers -----------------------------------------------------------------------
def fit_protector(method, clf, args, train_X):
    """``method`` against ``clf``, fitted and configured as in its main rows."""
    if method in ("ColorFool", "ColorFool-r"):
        return make_colorfool(clf, args, COLORFOOL_SEGMENTERS[method]).fit(train_X[:1])
    if method == "PrivateFGSM":
        return make_pfgsm(clf, args).fit(train_X[:1])
    if method == "EdgeFool-universal":
        return fit_universal_edgefool(clf, args, train_X)
    raise ValueError(f"no adaptive run for {method!r}")


def _score_se(y, pred, metric):
    """Standard error of an accuracy (binomial) or a balanced accuracy (mean of the
    per-class recalls, each binomial)."""
    if metric == "accuracy":
        p = np.mean(pred == y)
        return math.sqrt(p * (1 - p) / len(y))
    classes = np.unique(y)
    var = sum(r * (1 - r) / m for r, m in
              ((np.mean(pred[y == c] == c), np.sum(y == c)) for c in classes))
    return math.sqrt(var) / len(classes)


def _attack_records(rec, ds, protector, attribute, arch, mode, y, pred, **extra):
    """The attacker's score (balanced accuracy for 2 classes, accuracy otherwise) and its
    advantage over chance."""
    res = attack_score(y, pred)
    se = _score_se(y, pred, res["metric"])
    common = dict(attacker=arch, mode=mode, subset="adaptive_test", n=len(y), **extra)
    rec.add(ds, protector, f"{attribute}_{res['metric']}", res["score"], std=se,
            chance=res["chance"], **common)
    rec.add(ds, protector, f"{attribute}_advantage", res["advantage"],
            std=se / (1 - res["chance"]), **common)
    return res


def run_adaptive(rec, name, args, models, Xtr, ytr, Xpool, ypool, attribute):
    """Attackers retrained on protected images (adaptive) beside the same attackers
    trained on clean images (static; raw when also tested on clean images).

    Every attacker is trained on the first ``--n-adaptive-train`` training images and
    tested on the first ``--n-adaptive-test`` images of the shuffled test pool, whether
    or not the attacked classifier labels them correctly (the test images never reach
    a training set; the protectors' own classifier was trained on the whole training
    split). A protector protects both sets, as a user protecting every photo would.
    """
    n_tr, n_te = min(args.n_adaptive_train, len(Xtr)), min(args.n_adaptive_test, len(Xpool))
    Xa, ya, Xt, yt = Xtr[:n_tr], ytr[:n_tr], Xpool[:n_te], ypool[:n_te]
    extra = {"n_train": n_tr}

    def attacker(arch):
        # Fewer training images than the attacked classifier's, so more epochs.
        return make_classifier(arch, args, args.seed + ADAPTIVE_SEED_OFFSET,
                               max_epochs=args.adaptive_max_epochs,
                               patience=args.adaptive_patience)

    clean = {}
    for arch in ADAPTIVE_ATTACKERS:
        clean[arch] = attacker(arch).fit(Xa, ya)
        pred = clean[arch].predict(Xt)
        for mode in ("adaptive", "static"):  # on clean images the two coincide
            res = _attack_records(rec, name, "raw", attribute, arch, mode, yt, pred, **extra)
        log(f"  adaptive: {arch} trained on {n_tr} clean images: {res['metric']} "
            f"{res['score']:.3f} on {n_te} clean test images")
    for method in args.adaptive_methods:
        protector, fit_s = timed(lambda: fit_protector(method, models[ATTACKED], args, Xtr))
        protected, total = {}, fit_s
        for part, X in (("adaptive_train", Xa), ("adaptive_test", Xt)):
            (protected[part], diag), seconds = timed(
                partial(protector.transform_with_diagnostics, X))
            total += seconds
            # What the protector reached on each set (in its loop), for context.
            rec.rate(name, method, "success_rate_in_loop", np.asarray(diag.success),
                     np.ones(len(X), bool), attacker=ATTACKED, mode="static", subset=part,
                     seconds=seconds)
        log(f"  adaptive: {method} protected {n_tr} + {n_te} images in {total:.0f}s")
        versions = [(method, protected, {})]
        if method in args.adaptive_references:
            # Gaussian noise at the PSNR the protector reached on each image: what an
            # equally strong, non-adversarial distortion hides from the same attackers.
            # Seeds differ between the sets: one seed would give the i-th training and
            # test images the same noise pattern.
            noisy = {part: gaussian_noise_at_psnr(X, psnr(X, protected[part], average=False),
                                                  args.seed + offset)[0]
                     for part, X, offset in (("adaptive_train", Xa, 1), ("adaptive_test", Xt, 0))}
            versions.append(("GaussianNoise", noisy, {"matched_to": method}))
        for label, images, tags in versions:
            for arch in ADAPTIVE_ATTACKERS:
                static = _attack_records(rec, name, label, attribute, arch, "static", yt,
                                         clean[arch].predict(images["adaptive_test"]),
                                         **extra, **tags)
                retrained = attacker(arch).fit(images["adaptive_train"], ya)
                adaptive = _attack_records(rec, name, label, attribute, arch, "adaptive", yt,
                                           retrained.predict(images["adaptive_test"]),
                                           **extra, **tags)
                log(f"  adaptive: {label}{' matched to ' + method if tags else ''} vs "
                    f"{arch}: static {static['score']:.3f}, adaptive {adaptive['score']:.3f} "
                    f"({adaptive['metric']}, chance {adaptive['chance']:.3f})")


# -- one data set -----------------------------------------------------------------------------
def run_dataset(rec, name, args, notes):
    rng = np.random.default_rng(args.seed)
    log(f"{name}: loading")
    Xtr, ytr, Xpool, ypool, Xref, class_names, info = load_data(name, args, rng)
    log(f"  {len(ytr)} training images {Xtr.shape[1:3]}, pool {len(ypool)}, "
        f"reference {len(Xref)}")
    models, fit_info = train_models(Xtr, ytr, args)
    n_classes = len(class_names)
    majority = np.bincount(ypool).max() / len(ypool)
    for arch, clf in models.items():
        acc = float(np.mean(clf.predict(Xpool) == ypool))
        rec.add(name, "raw", "clean_accuracy", acc, attacker=arch,
                mode="static" if arch == ATTACKED else "transfer", subset="pool",
                n=len(ypool), chance=majority, fit_seconds=fit_info[arch]["fit_seconds"],
                epochs=fit_info[arch]["epochs"])
        log(f"  {arch}: clean accuracy {acc:.3f} on the pool of {len(ypool)}")
    correct = np.flatnonzero(models[ATTACKED].predict(Xpool) == ypool)
    chosen = correct[: args.n_images]
    if len(chosen) < args.n_images:
        notes.append(f"{name}: only {len(chosen)} pool images are labelled correctly "
                     f"(asked for {args.n_images}).")
    X, y = Xpool[chosen], ypool[chosen]
    info["n_attacked"] = len(chosen)
    info["n_drawn"] = int(chosen[-1] + 1) if len(chosen) else 0
    nat = fit_naturalness_model(Xref, patch_size=16)
    task = Task(name, X, y, models, args.confidence, nat, n_classes)
    info["n_confident"] = int(task.confident.sum())
    info["models"] = fit_info
    log(f"  attacking {len(y)} images (first {info['n_drawn']} of the shuffled pool; "
        f"{info['n_confident']} confident)")
    # Floors: the clean images themselves.
    for tname in ROBUSTNESS:
        flags = models[ATTACKED].predict(TRANSFORMS[tname](X)) != y
        for subset, mask in (("correct", np.ones(len(y), bool)), ("confident", task.confident)):
            rec.rate(name, "raw", f"success_rate_{tname}", flags, mask, attacker=ATTACKED,
                     mode="static", subset=subset)
    clean_nat = naturalness_score(X, nat, average=False)
    rec.add(name, "raw", "naturalness", clean_nat.mean(), std=clean_nat.std(), subset="all",
            n=len(y))
    methods = args.methods
    if "ColorFool" in methods:
        run_colorfool(rec, task, args, "ColorFool", sequential=True)
    if "ColorFool-r" in methods:
        run_colorfool(rec, task, args, "ColorFool-r", sequential=args.sequential_all)
    if "ColorFool-robust" in methods:
        run_colorfool(rec, task, args, "ColorFool-robust", sequential=True,
                      **ROBUST_COLORFOOL)
    if "ColorFool-robust-ensemble" in methods:
        name_e = "ColorFool-robust-ensemble"
        members = []
        for offset in ENSEMBLE_SEEDS:
            t = time.perf_counter()
            member = make_classifier(ATTACKED, args, args.seed + offset).fit(Xtr, ytr)
            seconds = time.perf_counter() - t
            acc = float(np.mean(member.predict(Xpool) == ypool))
            rec.add(name, name_e, "surrogate_clean_accuracy", acc, attacker=ATTACKED,
                    subset="pool", n=len(ypool), chance=majority, fit_seconds=seconds,
                    epochs=member.n_iter_, variant=f"seed {args.seed + offset}")
            log(f"  surrogate {ATTACKED} (seed {args.seed + offset}): clean accuracy "
                f"{acc:.3f}, trained in {seconds:.0f}s")
            members.append(member)
        run_colorfool(rec, task, args, name_e, sequential=False,
                      ensemble=members, **ROBUST_COLORFOOL)
    if "PrivateFGSM" in methods:
        run_pfgsm(rec, task, args, sequential=True)
    if "EdgeFool" in methods:
        n_ef = args.n_edgefool_cifar10 if name == "cifar10" else args.n_edgefool_utkface
        try:
            run_edgefool(rec, task, args, n_ef, Xtr, sequential=True)
        except Exception as exc:  # report, do not lose the other methods' results
            notes.append(f"{name}: EdgeFool failed: {type(exc).__name__}: {exc}")
            log(f"  EdgeFool failed: {exc!r}")
    if args.adaptive_methods:
        run_adaptive(rec, name, args, models, Xtr, ytr, Xpool, ypool,
                     "class" if name == "cifar10" else "gender")
    return info


# -- report -------------------------------------------------------------------------------
def _fmt(v, pct=False, digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * v:.{digits}f} %" if pct else f"{v:.{digits}f}"


def headline_rows(rec, datasets, methods):
    rows = []
    for ds in datasets:
        for m in methods:
            if not rec.find(dataset=ds, protector=m, metric="psnr"):
                continue

            def val(metric, subset="correct", **kw):
                return rec.value(dataset=ds, protector=m, metric=metric, subset=subset, **kw)

            succ = rec.find(dataset=ds, protector=m, metric="success_rate", attacker=ATTACKED,
                            subset="correct")[0]
            rows.append({
                "dataset": ds, "method": m, "n": succ["n"],
                "success": val("success_rate", attacker=ATTACKED),
                "success_conf": val("success_rate", "confident", attacker=ATTACKED),
                "n_conf": rec.find(dataset=ds, protector=m, metric="success_rate",
                                   attacker=ATTACKED, subset="confident")[0]["n"],
                **{f"transfer_{a}": val("success_rate", attacker=a) for a in TRANSFER},
                **{t: val(f"success_rate_{t}") for t in ROBUSTNESS},
                "top1": val("top1_out"), "top3": val("top3_out"), "top5": val("top5_out"),
                "psnr": val("psnr", "all"), "ssim": val("ssim", "all"),
                "ciede": val("ciede2000", "all"), "nat": val("naturalness", "all"),
                "linf": val("linf", "all"),
                "ips": rec.value(dataset=ds, protector=m, metric="transform_per_second",
                                 variant="batched"),
                "speedup": rec.value(dataset=ds, protector=m, metric="speedup_vs_sequential"),
                "noise": rec.value(dataset=ds, protector="GaussianNoise", metric="success_rate",
                                   attacker=ATTACKED, subset="correct", matched_to=m),
                "blur": rec.value(dataset=ds, protector="GaussianBlur", metric="success_rate",
                                  attacker=ATTACKED, subset="correct", matched_to=m),
                "blur_psnr": rec.value(dataset=ds, protector="GaussianBlur", metric="psnr",
                                       matched_to=m),
            })
    return rows


def _blur_cell(row):
    cell = _fmt(row["blur"], True)
    if row["blur_psnr"] is not None and row["psnr"] is not None and (
        row["blur_psnr"] - row["psnr"] > 0.5
    ):
        cell += f" (reached {row['blur_psnr']:.1f} dB)"
    return cell


def bars(rec, datasets):
    """The issue's bars: (description, dataset, measured, met) tuples."""
    out = []

    def check(ds, protector, text, measured, ok):
        if measured is not None:
            out.append((ds, protector, text, measured, bool(ok)))

    def at_least(x, bar):
        return x is not None and x >= bar  # None: a NaN record

    for ds in datasets:
        v = lambda **q: rec.value(dataset=ds, **q)  # noqa: E731
        for cf in ("ColorFool", "ColorFool-r", "ColorFool-robust", "ColorFool-robust-ensemble"):
            s = v(protector=cf, metric="success_rate", attacker=ATTACKED, subset="correct")
            if s is None:
                continue
            check(ds, cf, "success >= 95 %", _fmt(s, True), at_least(s, 0.95))
            for a in TRANSFER:
                t = v(protector=cf, metric="success_rate", attacker=a, subset="correct")
                check(ds, cf, f"transfer to {a} >= 60 %", _fmt(t, True), at_least(t, 0.60))
            j = v(protector=cf, metric="success_rate_jpeg75", subset="correct")
            check(ds, cf, "success after JPEG 75 >= 60 %", _fmt(j, True), at_least(j, 0.60))
            sp = v(protector=cf, metric="speedup_vs_sequential")
            if sp is not None and cf == "ColorFool":
                check(ds, cf, "batched >= 10x sequential images/s", f"{sp:.1f}x", sp >= 10)
        if ds == "cifar10" and v(protector="PrivateFGSM", metric="linf", subset="all") is not None:
            li = v(protector="PrivateFGSM", metric="linf", subset="all")
            check(ds, "PrivateFGSM", "L-inf <= 8/255 on uint8", f"{round(li * 255)}/255",
                  li <= 8 / 255 + 1e-9)
            t1 = v(protector="PrivateFGSM", metric="top1_out", subset="correct")
            check(ds, "PrivateFGSM", "true class out of top-1 >= 99 %", _fmt(t1, True),
                  t1 >= 0.99)
            t3 = v(protector="PrivateFGSM", metric="top3_out", subset="correct")
            check(ds, "PrivateFGSM", "true class out of top-3 >= 90 %", _fmt(t3, True),
                  t3 >= 0.90)
        s = v(protector="EdgeFool", metric="success_rate", attacker=ATTACKED, subset="correct")
        if s is not None:
            p = v(protector="EdgeFool", metric="psnr", subset="all")
            check(ds, "EdgeFool", "success >= 90 % with PSNR >= 30 dB",
                  f"{_fmt(s, True)}, {p:.1f} dB", s >= 0.90 and p >= 30)
    return out


def adaptive_section(rec, datasets, args):
    """Markdown lines of the adaptive-attacker table (none if the run has no such rows)."""

    def cell(r):
        return f"{_fmt(r['value'], True)} ± {_fmt(r['std'], True)}"

    rows = []
    versions = [("raw", None)]
    for method in ADAPTIVE_METHODS:
        versions += [(method, None), ("GaussianNoise", method)]
    for ds in datasets:
        for protector, matched_to in versions:
            for arch in ADAPTIVE_ATTACKERS:
                found = {}
                for mode in ("static", "adaptive"):
                    for r in rec.find(dataset=ds, protector=protector, attacker=arch,
                                      mode=mode, subset="adaptive_test",
                                      matched_to=matched_to):
                        kind = "advantage" if r["metric"].endswith("_advantage") else "score"
                        found[mode, kind] = r
                if ("adaptive", "score") not in found:
                    continue
                score = found["adaptive", "score"]
                raw = rec.find(dataset=ds, protector="raw", attacker=arch, mode="adaptive",
                               metric=score["metric"], subset="adaptive_test")
                shown, fooled = f"noise at {matched_to}'s PSNR", None
                if matched_to is None:
                    shown = protector
                    fooled = rec.value(dataset=ds, protector=protector,
                                       metric="success_rate_in_loop", subset="adaptive_test")
                rows.append("| " + " | ".join([
                    ds, shown, _fmt(fooled, True), arch, score["metric"].replace("_", " "),
                    _fmt(score["chance"], True), cell(raw[0]) if raw else "-",
                    cell(found["static", "score"]), f"**{cell(score)}**",
                    _fmt(found["adaptive", "advantage"]["value"], True),
                ]) + " |")
    if not rows:
        return []
    n_tr, n_te = args.n_adaptive_train, args.n_adaptive_test
    return [
        "",
        "## Adaptive attackers (retrained on protected images)",
        "",
        "The privacy figure that counts (DESIGN.md): an attacker that knows the protector "
        "is in use trains on protected images. Each attacker is an `ImageCNNClassifier` "
        f"of the named architecture (seed {args.seed + ADAPTIVE_SEED_OFFSET}, the "
        f"benchmark's recipe with up to {args.adaptive_max_epochs} epochs, patience "
        f"{args.adaptive_patience}) trained on the first {n_tr} training images with their "
        "true labels: clean (*raw*: tested on clean images; *static*: tested on protected "
        "images) or protected by the row's protector (*adaptive*: tested on protected "
        f"images). All are scored on the first {n_te} images of the shuffled test pool, "
        "whether or not the attacked classifier labels them correctly; no test image "
        "reaches a training set, and the protectors' own classifier (the attacked "
        f"`{ATTACKED}` network) was trained on the whole training split. Score: "
        "accuracy for the 10 CIFAR-10 classes (chance = the majority share), balanced "
        "accuracy for gender (chance 50 %), ± its standard error; advantage = (score - "
        "chance) / (1 - chance), clipped at 0, on the binary attribute crediting a "
        "systematically flipped attacker. *Fooled*: the share of the test images on which "
        "the protector reached its goal against the attacked classifier (its own "
        "`success` diagnostic). The per-image EdgeFool and the ColorFool-robust "
        "variants are left out: protecting the attacker's training images one image at a "
        "time costs hours on this CPU.",
        "",
        "| data set | protector | fooled | attacker | score | chance | raw | static | "
        "adaptive | adaptive advantage |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ] + rows


def write_markdown(path_md, rec, args, infos, notes, runtime, env, generic_table):
    datasets = list(infos)
    methods = METHODS
    lines = ["# Image protectors: privacy, robustness, quality and speed", ""]
    lines += [
        f"Run: `{env['command']}` "
        f"(seed {args.seed}), {runtime / 60:.1f} min wall-clock on {env['cpu']} "
        f"({env['n_cpus']} CPUs shared with other jobs, torch threads {args.threads}, "
        f"GPU: {env['gpu'] or 'none'}), {env['date']}. Python {env['python']}, torch "
        f"{env['torch']}, numpy {env['numpy']}, scikit-learn {env['sklearn']}, skorch "
        f"{env['skorch']}, sklearn-privacy {env['sklearn_privacy']}.",
        "",
        "Classifiers: `ImageCNNClassifier` (`n_filters="
        f"{args.n_filters}`, `input_size={args.input_size}`, up to {args.max_epochs} epochs, "
        f"early stopping patience {args.patience} on 15 % of the training data). The "
        f"attacked one is `architecture=\"{ATTACKED}\"`; `\"wide\"` and `\"resnet\"` are "
        "trained separately on the same images and never seen by the attacks (transfer).",
        "",
    ]
    for ds, info in infos.items():
        acc = {a: rec.value(dataset=ds, protector="raw", metric="clean_accuracy", attacker=a)
               for a in (ATTACKED,) + TRANSFER}
        lines.append(
            f"- **{ds}** (private attribute: {info['private_attribute']}; images "
            f"{info['image_size']}x{info['image_size']}, classifiers see "
            f"{args.input_size}x{args.input_size} through their own resize). Training: "
            f"{info['train']}. Clean accuracy on the pool ({info['pool']}): "
            + ", ".join(f"{a} {_fmt(acc[a], True)}" for a in acc)
            + f". Attacked: the first {info['n_attacked']} pool images the attacked "
            f"classifier labels correctly (out of {info['n_drawn']} drawn; "
            f"{info['n_confident']} of them with p_max > {args.confidence})."
        )
    lines += [
        "",
        "All success figures are measured on the saved uint8 images through each "
        "classifier's deployment preprocessing, never inside an attack loop. *Success* = "
        "the true (private) label is no longer predicted; counted on images the attacked "
        "classifier labels correctly (transfer: images both it and the unseen "
        "architecture label correctly). The `std` of a rate is its standard error; of a "
        "quality figure, the spread over images. Naturalness is a NIQE-style distance to "
        "held-out clean images of the same data set (lower = more natural; the clean "
        "attacked images score "
        + ", ".join(
            f"{_fmt(rec.value(dataset=ds, protector='raw', metric='naturalness'), digits=2)}"
            f" on {ds}" for ds in datasets)
        + ").",
        "",
        "## Bars of the issue",
        "",
        "| data set | method | bar | measured | met |",
        "|---|---|---|---|---|",
    ]
    for ds, prot, text, measured, ok in bars(rec, datasets):
        lines.append(f"| {ds} | {prot} | {text} | {measured} | {'yes' if ok else '**no**'} |")
    lines += adaptive_section(rec, datasets, args)
    lines += [
        "",
        "## Headline figures (subset `correct`)",
        "",
        "| data set | method | n | success | success (confident, n) | transfer wide | "
        "transfer resnet | JPEG 75 | median 3x3 | 4-bit | top-1 out | top-3 out | "
        "top-5 out | PSNR dB | SSIM | CIEDE2000 | naturalness | L-inf | images/s | "
        "speed-up vs sequential | noise at same PSNR | blur at same PSNR |",
        "|" + "---|" * 22,
    ]
    floors = {ds: {t: rec.value(dataset=ds, protector="raw", metric=f"success_rate_{t}",
                                subset="correct") for t in ROBUSTNESS} for ds in datasets}
    for r in headline_rows(rec, datasets, methods):
        lines.append("| " + " | ".join([
            r["dataset"], r["method"], str(r["n"]), _fmt(r["success"], True),
            f"{_fmt(r['success_conf'], True)} ({r['n_conf']})", _fmt(r["transfer_wide"], True),
            _fmt(r["transfer_resnet"], True), _fmt(r["jpeg75"], True),
            _fmt(r["median3"], True), _fmt(r["quant4"], True), _fmt(r["top1"], True),
            _fmt(r["top3"], True), _fmt(r["top5"], True), _fmt(r["psnr"]),
            _fmt(r["ssim"], digits=3), _fmt(r["ciede"], digits=2), _fmt(r["nat"], digits=2),
            "-" if r["linf"] is None else f"{round(r['linf'] * 255)}/255",
            _fmt(r["ips"]), "-" if r["speedup"] is None else f"{r['speedup']:.1f}x",
            _fmt(r["noise"], True), _blur_cell(r),
        ]) + " |")
    lines += [
        "",
        "Floors (clean images through the same transform, success = the transform alone "
        "changes the label): "
        + "; ".join(f"{ds}: JPEG {_fmt(f['jpeg75'], True)}, median {_fmt(f['median3'], True)},"
                    f" 4-bit {_fmt(f['quant4'], True)}" for ds, f in floors.items())
        + ". Noise/blur columns: success of Gaussian noise / Gaussian blur calibrated per "
        "image to the PSNR the method reached on that image (blur cannot go below the "
        "PSNR of its largest sigma, a sixth of the image side; its records give the "
        "reached PSNR).",
        "",
        "## Speed: batched versus sequential (same algorithm, same run)",
        "",
        "| data set | method | n | unit | batched /s | sequential /s | speed-up | "
        "speed-up (CPU time) | same success | identical outputs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ds in datasets:
        for m in methods:
            sp = rec.find(dataset=ds, protector=m, metric="speedup_vs_sequential")
            if not sp:
                continue
            b = rec.find(dataset=ds, protector=m, metric="transform_per_second",
                         variant="batched_subset")[0]
            s = rec.find(dataset=ds, protector=m, metric="transform_per_second",
                         variant="sequential")[0]
            same = rec.value(dataset=ds, protector=m, metric="sequential_equal_success")
            identical = rec.value(dataset=ds, protector=m, metric="sequential_identical_output")
            cpu = rec.value(dataset=ds, protector=m, metric="speedup_vs_sequential_cpu_time")
            lines.append(
                f"| {ds} | {m} | {sp[0]['n']} | {sp[0]['unit']} | {b['value']:.2f} | "
                f"{s['value']:.2f} | {sp[0]['value']:.1f}x | "
                f"{'-' if cpu is None else f'{cpu:.1f}x'} | {_fmt(same, True)} | "
                f"{_fmt(identical, True)} |"
            )
    lines += ["", "## Notes", ""]
    for ds in datasets:
        cover = rec.find(dataset=ds, protector="ColorFool", metric="mask_coverage")
        if cover:
            lines.append(
                f"- {ds}: `HeuristicSegmenter` coverage of the attacked images (mean soft "
                "mask): " + ", ".join(f"{c['region']} {_fmt(c['value'], True)}" for c in cover)
                + ". ColorFool never recolours the person region and keeps sky, vegetation "
                "and water in their natural colour ranges; only the rest gets the free shift."
            )
    for ds, info in infos.items():
        if info["n_confident"] < 20:
            lines.append(
                f"- {ds}: only {info['n_confident']} attacked images are confident "
                f"(p_max > {args.confidence}): the `confident` figures of {ds} are too few "
                "to read."
            )
    lines.append(
        "- The classifiers are trained briefly to fit the CPU budget (clean accuracy "
        "above). A weak classifier is easier to fool and more fragile to any distortion: "
        "read each success rate against the floors and the noise/blur columns, and "
        "scale up (`--n-train`, `--max-epochs`, `--n-filters`) for stronger targets."
    )
    lines += [f"- {n}" for n in notes]
    lines += ["", "## All records", ""]
    lines += generic_table
    Path(path_md).write_text("\n".join(lines) + "\n")


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                   help="folder holding cifar10/ and utkface/crop_part1/")
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--name", default="image_privacy", help="results file stem")
    p.add_argument("--datasets", nargs="+", default=["cifar10", "utkface"],
                   choices=["cifar10", "utkface"])
    p.add_argument("--methods", nargs="*",
                   default=["ColorFool", "ColorFool-r", "ColorFool-robust",
                            "ColorFool-robust-ensemble", "PrivateFGSM", "EdgeFool"],
                   choices=["ColorFool", "ColorFool-r", "ColorFool-robust",
                            "ColorFool-robust-ensemble", "PrivateFGSM", "EdgeFool"])
    p.add_argument("--adaptive-methods", nargs="*", default=list(ADAPTIVE_METHODS),
                   choices=list(ADAPTIVE_METHODS),
                   help="protectors measured against attackers retrained on protected images")
    p.add_argument("--n-adaptive-train", type=int, default=2000,
                   help="training images of the adaptive (and matching clean) attackers")
    p.add_argument("--n-adaptive-test", type=int, default=300,
                   help="test-pool images the adaptive attackers are scored on")
    p.add_argument("--adaptive-references", nargs="*", default=["EdgeFool-universal"],
                   choices=list(ADAPTIVE_METHODS),
                   help="adaptive methods also measured with Gaussian noise at their "
                        "per-image PSNR")
    p.add_argument("--adaptive-max-epochs", type=int, default=15,
                   help="epochs of the adaptive (and matching clean) attackers at most")
    p.add_argument("--adaptive-patience", type=int, default=3)
    p.add_argument("--n-images", type=int, default=200,
                   help="attacked test images per data set (all labelled correctly)")
    p.add_argument("--n-train", type=int, default=3000, help="training images per data set")
    p.add_argument("--n-reference", type=int, default=300,
                   help="held-out clean images for the naturalness model")
    p.add_argument("--n-pool-per-class", type=int, default=100,
                   help="CIFAR-10 test images per class to draw from (UTKFace: x10 in all)")
    p.add_argument("--utk-size", type=int, default=64, help="UTKFace images are resized to this")
    p.add_argument("--input-size", type=int, default=32, help="classifier input side")
    p.add_argument("--n-filters", type=int, default=16)
    p.add_argument("--max-epochs", type=int, default=7)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--confidence", type=float, default=0.9,
                   help="p_max threshold of the 'confident' subset")
    p.add_argument("--colorfool-trials", type=int, default=1000)
    p.add_argument("--n-sequential", type=int, default=12,
                   help="images of the sequential ColorFool / P-FGSM speed runs")
    p.add_argument("--sequential-all", action="store_true",
                   help="also run the sequential comparison for ColorFool-r")
    p.add_argument("--n-edgefool-cifar10", type=int, default=200)
    p.add_argument("--n-edgefool-utkface", type=int, default=100)
    p.add_argument("--edgefool-max-iter", type=int, default=400,
                   help="Adam steps per image at most (the paper: 5000)")
    p.add_argument("--edgefool-max-grad-norm", type=float, default=0.0,
                   help="EdgeFool's gradient clipping (max_grad_norm) in the attack run; "
                        "0 = unclipped (the paper: 0.01)")
    p.add_argument("--edgefool-batch-size", type=int, default=32)
    p.add_argument("--edgefool-min-psnr", type=float, default=30.0,
                   help="EdgeFool's fidelity floor in dB (min_psnr); 0 = none (the paper)")
    p.add_argument("--n-edgefool-sequential", type=int, default=4)
    p.add_argument("--edgefool-speed-steps", type=int, default=20,
                   help="fixed steps per image of the EdgeFool speed comparison")
    p.add_argument("--edgefool-universal-steps", type=int, default=20,
                   help="Adam steps of the universal filter (0 skips it)")
    p.add_argument("--n-edgefool-universal-train", type=int, default=64)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (on shared, oversubscribed cores 1 is fastest)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny smoke-test settings")
    p.add_argument("--from-json", type=Path, default=None,
                   help="only rewrite the Markdown report of this results JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.n_images, args.n_train, args.n_reference = 12, 400, 40
        args.n_pool_per_class, args.max_epochs = 10, 2
        args.colorfool_trials, args.n_sequential = 200, 3
        args.n_edgefool_cifar10 = args.n_edgefool_utkface = 2
        args.edgefool_max_iter, args.n_edgefool_sequential = 5, 2
        args.edgefool_speed_steps, args.edgefool_universal_steps = 2, 2
        args.n_edgefool_universal_train = 16
        args.n_adaptive_train, args.n_adaptive_test = 200, 40
        args.adaptive_max_epochs = 2
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.from_json is not None:
        return report_from_json(args.from_json)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rec, notes, infos = Recorder(), [], {}
    log(f"settings: {vars(args)}")
    for name in args.datasets:
        infos[name] = run_dataset(rec, name, args, notes)
    runtime = time.perf_counter() - _T0
    env = environment_record()
    env.update(runtime_seconds=round(runtime, 1), torch_threads=args.threads,
               command=" ".join(["python", "benchmarks/image_privacy.py"] + sys.argv[1:]),
               settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                         if k not in ("data_dir", "out_dir", "from_json")},
               datasets=infos, notes=list(notes))
    path_json = args.out_dir / f"{args.name}.json"
    written = write_outputs(rec, env, path_json)
    log(f"wrote {len(written)} records to {path_json} and its .md ({runtime / 60:.1f} min)")
    for row in headline_rows(rec, args.datasets, METHODS):
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in row.items()}))
    for ds, prot, text, measured, ok in bars(rec, args.datasets):
        print(f"BAR {ds:8s} {prot:12s} {text:40s} {measured:>16s}  {'met' if ok else 'NOT met'}")


def write_outputs(rec, env, path_json):
    """The JSON records and the Markdown report beside it."""
    path_md = path_json.with_suffix(".md")
    written = write_benchmark_records(rec.records + [env], path_json, path_md)
    # write_benchmark_records writes a generic table; keep it as the appendix of the report.
    generic = path_md.read_text().splitlines()
    start = next(i for i, line in enumerate(generic) if line.startswith("| dataset"))
    settings = argparse.Namespace(**env["settings"])
    notes = list(env.get("notes", [])) + default_notes(settings)
    write_markdown(path_md, rec, settings, env["datasets"], notes, env["runtime_seconds"], env,
                   generic[start:])
    return written


def report_from_json(path_json):
    """Rewrite the Markdown report of an earlier run from its JSON records."""
    records = json.loads(Path(path_json).read_text())
    env = next(r for r in records if r.get("metric") == "environment")
    rec = Recorder()
    rec.records = [r for r in records if r.get("metric") != "environment"]
    env.setdefault("command", "python benchmarks/image_privacy.py")
    write_outputs(rec, env, Path(path_json))
    log(f"rewrote {Path(path_json).with_suffix('.md')}")


def _max_grad_norm(args):
    value = getattr(args, "edgefool_max_grad_norm", 0.01)  # older runs: the paper's
    return value if value > 0 else None


def _min_psnr(args):
    value = getattr(args, "edgefool_min_psnr", 0) or 0
    return value if value > 0 else None


def default_notes(args):
    return [
        "`success_rate` with `mode=static` is the attacked classifier itself (trained on "
        "clean images, tested on protected ones); `mode=transfer` are the unseen "
        "architectures. `success_rate_in_loop` is what the protector itself reported "
        "(the `success` of `transform_with_diagnostics`), for comparison with the figure "
        "measured afterwards.",
        "P-FGSM runs with its default `objective=\"topk\"` (push the true class out of "
        "the top-5 by a logit margin of 1; beyond the paper); `success_rate_in_loop` is "
        "its own `success` diagnostic (out of the top-k on the uint8 image). With "
        "`objective=\"paper\"`, `target_rate` = share classified as the drawn target "
        "class. `success_rate` = the true class left the top-1. With 2 classes (UTKFace) "
        "top-3/5 are undefined and left out.",
        f"EdgeFool is run per image on the first {args.n_edgefool_cifar10} (CIFAR-10) / "
        f"{args.n_edgefool_utkface} (UTKFace) attacked images with at most "
        f"{args.edgefool_max_iter} Adam steps per image (the paper: 5000), because every "
        "step runs the filter network and the classifier forward and backward (measured "
        "cost per image and step: `seconds_per_image_step` records). "
        + (f"It runs with the fidelity budget `min_psnr={_min_psnr(args):g}` (an extension "
           "beyond the paper; key `min_psnr` of its records): the enhancement's residual is "
           "projected onto the L2 ball of that PSNR inside the loop, an image stops as soon "
           "as its 8-bit image is misclassified within the budget, and the floor is "
           "guaranteed again on the returned uint8 images. "
           if _min_psnr(args) else
           "An image that has not met the stopping test (misclassified and MSE to the L0 "
           "target < 5e-4) by then is returned as it stands. ")
        + ("Its gradients are unclipped (`max_grad_norm=None`, beyond the paper, which "
           "clips them to 0.01). "
           if _max_grad_norm(args) is None else
           f"Its gradients are clipped to `max_grad_norm={_max_grad_norm(args):g}`. ")
        + "Its speed comparison runs a fixed number of steps "
        f"({args.edgefool_speed_steps}) on {args.n_edgefool_sequential} images without the "
        "budget (the paper's algorithm, stopping switched off), batched (one bank of "
        "filters) versus one image at a time.",
        "Speed-ups are wall-clock ratios; on this machine shared with other jobs the "
        "`speedup_vs_sequential_cpu_time` records (CPU time of the process, torch threads "
        "1; recorded for the runs that have them) are the steadier figure.",
        f"EdgeFool-universal (an extension, not the paper): one filter trained with "
        f"{args.edgefool_universal_steps} Adam steps on {args.n_edgefool_universal_train} "
        "training images, then applied in one forward pass to every attacked image.",
        "ColorFool uses the offline `HeuristicSegmenter` (colour/position rules, no "
        "learned model; the paper uses a semantic segmentation network), so its "
        "semantic regions are rough; ColorFool-r has no segmenter (one global shift).",
        "ColorFool-robust (an extension, not the paper; the `ColorFool` rows stay the "
        "paper's algorithm): the same search, random streams and segmenter, with robust "
        "acceptance `robust_transforms=" + str(ROBUST_COLORFOOL["robust_transforms"])
        + "`: a trial counts only if the attacked classifier's label also changes on its "
        "JPEG-75, 3x3 median, 3x3 binomial blur, 1-pixel shift and horizontal flip copies "
        "(hard labels only), and `on_failure=\"paper\"`: an image with no such trial "
        "gets the paper's output (`robust_acceptance_rate` records: share of images "
        "whose returned trial passed the robust test). ColorFool-robust-ensemble "
        "(also an extension): the same, and the trial must also change the label of "
        f"two more `{ATTACKED}` networks trained with seeds "
        f"{', '.join(str(args.seed + o) for o in ENSEMBLE_SEEDS)} on the same training "
        "images (`ensemble=`; `surrogate_clean_accuracy` records); `wide` and `resnet` "
        "stay unseen.",
        "Reference rows (`GaussianNoise`, `GaussianBlur`, key `matched_to`) are "
        "calibrated per image by 30 bisection steps on sigma to the PSNR the method "
        "reached on that image; their `sigma` records give the mean sigma.",
    ]


if __name__ == "__main__":
    main()
