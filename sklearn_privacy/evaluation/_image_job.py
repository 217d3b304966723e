"""The image evaluation job behind ``sklearn-privacy evaluate image`` and the benchmark.

It reads a UTKFace or CIFAR-10 folder, splits it into training images, held-out
reference images (for the naturalness model) and a test pool, builds the classifiers and
the protectors by name, runs :func:`~sklearn_privacy.evaluation.image_privacy_report` and
writes the records, a Markdown report and a summary table.
"""

import math
from pathlib import Path

# Only light imports at module level: the command's ``--help`` reads the tables below
# without loading numpy, scikit-learn or torch; the functions import what they use.

__all__ = [
    "ADAPTIVE_METHODS",
    "DEFAULT_METHODS",
    "METHODS",
    "PROFILES",
    "detect_image_dataset",
    "evaluate_image",
    "load_image_task",
    "make_classifier",
    "make_image_protectors",
    "summary_rows",
    "write_image_outputs",
]

#: Budgets. ``quick`` is a smoke test that runs in a few minutes on a CPU; ``default``
#: is the benchmark's setting (about an hour per data set on two shared CPU cores);
#: ``full`` trains on more images for longer and attacks more of them.
PROFILES = {
    "quick": dict(
        n_train=1000, n_reference=40, n_pool_per_class=20, n_images=16, utk_size=32,
        input_size=32, n_filters=16, max_epochs=6, patience=2, lr=2e-3, confidence=0.9,
        transfer=("wide",), colorfool_trials=200, edgefool_images=4, edgefool_max_iter=30,
        edgefool_min_psnr=30.0, universal_steps=5, universal_fit=32,
        n_adaptive_train=1000, n_adaptive_test=100, adaptive_max_epochs=8,
        adaptive_patience=3, adaptive_attackers=("small",),
    ),
    "default": dict(
        n_train=3000, n_reference=300, n_pool_per_class=100, n_images=200, utk_size=64,
        input_size=32, n_filters=16, max_epochs=7, patience=2, lr=2e-3, confidence=0.9,
        transfer=("wide", "resnet"), colorfool_trials=1000, edgefool_images=100,
        edgefool_max_iter=400, edgefool_min_psnr=30.0, universal_steps=20,
        universal_fit=64, n_adaptive_train=2000, n_adaptive_test=300,
        adaptive_max_epochs=15, adaptive_patience=3, adaptive_attackers=("small", "wide"),
    ),
    "full": dict(
        n_train=10000, n_reference=500, n_pool_per_class=300, n_images=500, utk_size=64,
        input_size=32, n_filters=32, max_epochs=20, patience=4, lr=2e-3, confidence=0.9,
        transfer=("wide", "resnet"), colorfool_trials=1000, edgefool_images=200,
        edgefool_max_iter=1000, edgefool_min_psnr=30.0, universal_steps=50,
        universal_fit=256, n_adaptive_train=5000, n_adaptive_test=1000,
        adaptive_max_epochs=30, adaptive_patience=5, adaptive_attackers=("small", "wide"),
    ),
}

#: The attacked classifier's architecture (the transfer models are the profile's).
ATTACKED = "small"
#: Seed offsets: the adaptive attackers and the ensemble surrogates are seeded apart
#: from the attacked classifier.
ADAPTIVE_SEED_OFFSET = 100
ENSEMBLE_SEEDS = (1, 2)
#: ColorFool-robust: the paper's search with robust acceptance (beyond the paper).
ROBUST_COLORFOOL = dict(robust_transforms=["jpeg", "median", "blur", "shift", "flip"],
                        on_failure="paper")

#: ``name -> one-line description`` of the protectors the job builds.
METHODS = {
    "ColorFool": "ColorFool with the offline heuristic segmenter (the paper's search)",
    "ColorFool-r": "ColorFool without segmenter (one global colour shift)",
    "ColorFool-robust": "ColorFool whose trials must also survive JPEG, median, blur, "
                        "shift and flip (beyond the paper)",
    "ColorFool-robust-ensemble": "ColorFool-robust that must also fool two more "
                                 "networks trained with other seeds (beyond the paper)",
    "PrivateFGSM": "P-FGSM: 8/255 perturbation pushing the true class out of the top-5",
    "EdgeFool": "EdgeFool per image within 30 dB PSNR (slow: a subset of images)",
    "EdgeFool-universal": "one EdgeFool filter trained once, applied in one pass",
}
DEFAULT_METHODS = ("ColorFool", "ColorFool-r", "PrivateFGSM", "EdgeFool",
                   "EdgeFool-universal")
#: Methods cheap enough to protect the adaptive attackers' training set.
ADAPTIVE_METHODS = ("ColorFool", "ColorFool-r", "PrivateFGSM", "EdgeFool-universal")


def detect_image_dataset(path):
    """``"cifar10"`` or ``"utkface"``: which layout the folder ``path`` holds.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder, or holds neither layout.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image data folder not found: {root}")
    if ((root / "train").is_dir() and (root / "test").is_dir()) or any(
        (folder / "batches.meta").is_file() for folder in (root, root / "cifar-10-batches-py")
    ):
        return "cifar10"
    folder = root / "crop_part1" if (root / "crop_part1").is_dir() else root
    if any(p.name.endswith(".jpg") and p.name.count("_") >= 3 for p in folder.iterdir()):
        return "utkface"
    raise FileNotFoundError(
        f"{root} holds neither a CIFAR-10 layout (train/<class>/*.jpg and "
        "test/<class>/*.jpg, or the python batches) nor a UTKFace one "
        "(<age>_<gender>_<race>_<date>.jpg.chip.jpg files, directly or in crop_part1/)."
    )


def load_image_task(path, *, profile="default", random_state=0, **overrides):
    """Read the data set at ``path`` and split it for :func:`evaluate_image`.

    Returns
    -------
    task : Bunch
        ``X_train``, ``y_train``, ``X_test``, ``y_test`` (the test pool), ``X_reference``
        (held-out clean images), ``dataset``, ``sensitive_name``, ``class_names`` and
        ``info`` (a description of the splits).
    """
    import numpy as np
    from sklearn.utils import Bunch

    from ..datasets import load_cifar10, load_utkface

    settings = {**PROFILES[profile], **overrides}
    dataset = detect_image_dataset(path)
    rng = np.random.default_rng(random_state)
    root = Path(path).expanduser()
    if dataset == "cifar10":
        per_class = math.ceil(settings["n_train"] / 10)
        train = load_cifar10(root, subset="train", max_per_class=per_class)
        test = load_cifar10(root, subset="test", max_per_class=settings["n_pool_per_class"])
        order = rng.permutation(len(test.target))
        n_ref = min(settings["n_reference"], len(order) // 3)
        ref, pool = order[:n_ref], order[n_ref:]
        X_train, y_train = train.images, train.target
        X_test, y_test, X_ref = test.images[pool], test.target[pool], test.images[ref]
        sensitive_name, class_names = "class", list(train.target_names)
        info = {"private_attribute": "class (10 classes)", "image_size": 32,
                "train": f"first {per_class} JPEGs per class of the train split",
                "pool": f"first {settings['n_pool_per_class']} test images per class, "
                        "shuffled"}
    else:
        faces = load_utkface(root, size=settings["utk_size"])
        order = rng.permutation(len(faces.gender))
        n_tr = min(settings["n_train"], len(order) // 2)
        n_ref = min(settings["n_reference"], (len(order) - n_tr) // 3)
        tr, ref, pool = order[:n_tr], order[n_tr : n_tr + n_ref], order[n_tr + n_ref :]
        pool = pool[: settings["n_pool_per_class"] * 10]
        X_train, y_train = faces.images[tr], faces.gender[tr]
        X_test, y_test, X_ref = faces.images[pool], faces.gender[pool], faces.images[ref]
        sensitive_name, class_names = "gender", ["male", "female"]
        info = {"private_attribute": "gender (0 male, 1 female)",
                "image_size": settings["utk_size"],
                "train": f"{n_tr} random face chips ({len(order)} in all), resized to "
                         f"{settings['utk_size']}",
                "pool": f"{len(pool)} other random face chips"}
    return Bunch(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                 X_reference=X_ref, dataset=dataset, sensitive_name=sensitive_name,
                 class_names=class_names, info=info)


def make_classifier(architecture, settings, random_state, device="auto", *, adaptive=False):
    """An unfitted :class:`~sklearn_privacy.adversaries.ImageCNNClassifier` of the job."""
    from ..adversaries import ImageCNNClassifier

    return ImageCNNClassifier(
        architecture=architecture, n_filters=settings["n_filters"],
        input_size=settings["input_size"],
        max_epochs=settings["adaptive_max_epochs" if adaptive else "max_epochs"],
        patience=settings["adaptive_patience" if adaptive else "patience"],
        lr=settings["lr"], random_state=random_state, device=device,
    )


def make_image_protectors(methods, settings, *, random_state=0, device="auto",
                          X_train=None, y_train=None):
    """Unfitted protectors by name; their ``classifier`` is left to the report.

    ``ColorFool-robust-ensemble`` trains its two surrogate networks on ``X_train``.
    """
    from ..image import ColorFool, EdgeFool, PrivateFGSM

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose among {list(METHODS)}.")
    seed, protectors = random_state, {}
    for name in methods:
        if name.startswith("ColorFool"):
            kw = dict(ROBUST_COLORFOOL) if "robust" in name else {}
            if name == "ColorFool-robust-ensemble":
                if X_train is None:
                    raise ValueError(f"{name} needs X_train and y_train for its surrogates.")
                kw["ensemble"] = [make_classifier(ATTACKED, settings, seed + o, device)
                                  .fit(X_train, y_train) for o in ENSEMBLE_SEEDS]
            protectors[name] = ColorFool(
                segmenter=None if name == "ColorFool-r" else "heuristic",
                n_trials=settings["colorfool_trials"], random_state=seed, device=device, **kw)
        elif name == "PrivateFGSM":
            protectors[name] = PrivateFGSM(random_state=seed, device=device)
        elif name == "EdgeFool":
            protectors[name] = EdgeFool(
                max_iter=settings["edgefool_max_iter"], min_psnr=settings["edgefool_min_psnr"]
                or None, max_grad_norm=None, random_state=seed, device=device)
        else:
            protectors[name] = EdgeFool(mode="universal", max_iter=settings["universal_steps"],
                                        batch_size=16, random_state=seed, device=device)
    return protectors


def evaluate_image(task, methods=DEFAULT_METHODS, *, profile="default", random_state=0,
                   device="auto", verbose=1, **overrides):
    """Train the classifiers, build the protectors and run the image report.

    Returns
    -------
    records : list of dict
        The records of :func:`~sklearn_privacy.evaluation.image_privacy_report`.
    """
    from ._image import image_privacy_report

    settings = {**PROFILES[profile], **overrides}
    seed = random_state
    # EdgeFool-universal fits on its own slice of the training images; the per-image
    # methods' fit only wraps the classifier, so one image is enough for all.
    protectors = make_image_protectors(methods, settings, random_state=seed, device=device,
                                       X_train=task.X_train, y_train=task.y_train)
    # The per-image methods' fit only wraps the classifier: one image is enough.
    # EdgeFool-universal trains its filter on its own slice of the training images.
    n_fit = {name: 1 for name in protectors}
    n_fit["EdgeFool-universal"] = settings["universal_fit"]
    n_images = {name: settings["n_images"] for name in protectors}
    n_images["EdgeFool"] = min(settings["edgefool_images"], settings["n_images"])
    classifier = make_classifier(ATTACKED, settings, seed, device)
    transfer = {arch: make_classifier(arch, settings, seed, device)
                for arch in settings["transfer"]}
    adaptive = {arch: make_classifier(arch, settings, seed + ADAPTIVE_SEED_OFFSET, device,
                                      adaptive=True)
                for arch in settings["adaptive_attackers"]}
    adaptive_names = [n for n in protectors if n in ADAPTIVE_METHODS]
    return image_privacy_report(
        protectors, classifier, task.X_train, task.y_train, task.X_test, task.y_test,
        transfer=transfer, adaptive=adaptive if adaptive_names else None,
        adaptive_protectors=adaptive_names,
        adaptive_references=[n for n in adaptive_names if n == "EdgeFool-universal"],
        X_reference=task.X_reference, n_images=n_images,
        n_adaptive_train=settings["n_adaptive_train"],
        n_adaptive_test=settings["n_adaptive_test"], n_protector_fit=n_fit,
        confidence=settings["confidence"], dataset=task.dataset, classifier_name=ATTACKED,
        sensitive_name=task.sensitive_name, random_state=seed, verbose=verbose,
    )


def summary_rows(records):
    """One row per protector: the headline figures of ``records`` (a list of dict)."""
    def find(**query):
        return [r for r in records if all(r.get(k) == v for k, v in query.items())]

    def value(**query):
        found = find(**query)
        return found[0]["value"] if found else None

    rows = []
    for ds in dict.fromkeys(r["dataset"] for r in records):
        protectors = dict.fromkeys(r["protector"] for r in records if r["dataset"] == ds)
        for prot in protectors:
            if prot in ("GaussianNoise", "GaussianBlur"):
                continue
            transfer = [r["value"] for r in find(dataset=ds, protector=prot,
                                                 metric="success_rate", mode="transfer",
                                                 subset="correct")
                        if r.get("matched_to") is None]
            adaptive = [r for r in records if r["dataset"] == ds and r["protector"] == prot
                        and r.get("subset") == "adaptive_test" and r.get("matched_to") is None
                        and r["metric"] != "success_rate_in_loop"
                        and not r["metric"].endswith("_advantage")]
            worst = {mode: max((r["value"] for r in adaptive if r["mode"] == mode),
                               default=None) for mode in ("adaptive", "static")}
            rows.append({
                "dataset": ds, "protector": prot,
                "success": value(dataset=ds, protector=prot, metric="success_rate",
                                 mode="static", subset="correct", matched_to=None),
                "transfer (worst)": min(transfer) if transfer else None,
                "JPEG 75": value(dataset=ds, protector=prot, metric="success_rate_jpeg75",
                                 subset="correct"),
                "median 3x3": value(dataset=ds, protector=prot, metric="success_rate_median3",
                                    subset="correct"),
                "4-bit": value(dataset=ds, protector=prot, metric="success_rate_quant4",
                               subset="correct"),
                "PSNR dB": value(dataset=ds, protector=prot, metric="psnr"),
                "SSIM": value(dataset=ds, protector=prot, metric="ssim"),
                "noise at same PSNR": value(dataset=ds, protector="GaussianNoise",
                                            metric="success_rate", mode="static",
                                            subset="correct", matched_to=prot),
                "attacker static": worst["static"],
                "attacker adaptive": worst["adaptive"],
                "chance": adaptive[0]["chance"] if adaptive else None,
            })
    return [row for row in rows if any(v is not None for k, v in row.items()
                                       if k not in ("dataset", "protector"))]


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) > 1.5 else f"{value:.3f}"
    return str(value)


def format_table(rows, *, markdown=False):
    """The summary rows as a plain-text (or Markdown) table."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:>{w}}}" if i > 1 else f"{{:<{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*columns)] + [fmt.format(*r) for r in cells])


_EXPLANATION = (
    "success = share of correctly classified test images whose private label the attacked "
    "classifier no longer predicts on the protected uint8 image; transfer = the same on "
    "unseen architectures (worst shown); JPEG 75 / median 3x3 / 4-bit = success after "
    "that transform; noise at same PSNR = Gaussian noise calibrated per image to the "
    "protector's PSNR; attacker static / adaptive = best score over the attackers "
    "trained on clean / on protected training images, tested on protected test images "
    "(accuracy, or balanced accuracy for two classes; raw = clean images)."
)


def write_image_outputs(records, output_dir, *, info=None, settings=None):
    """Write ``report.json`` and ``report.md`` to ``output_dir``.

    Returns
    -------
    paths : dict
        ``{"json": ..., "markdown": ...}``.
    """
    from ._records import write_benchmark_records

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / "report.json", "markdown": output_dir / "report.md"}
    written = write_benchmark_records(records, paths["json"], paths["markdown"])
    env = next(r for r in written if r["metric"] == "environment")
    generic = paths["markdown"].read_text().splitlines()
    start = next((i for i, line in enumerate(generic) if line.startswith("| dataset")),
                 len(generic))
    lines = ["# Image protectors: privacy, robustness and quality", "",
             f"Run on {env['date']}, {env['cpu']}, GPU: {env['gpu'] or 'none'}; torch "
             f"{env['torch']}, sklearn-privacy {env['sklearn_privacy']}.", ""]
    for key, value in (info or {}).items():
        lines.append(f"- {key}: {value}")
    if settings:
        lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    lines += ["", "## Summary", "", format_table(summary_rows(records), markdown=True), "",
              _EXPLANATION, "", "## All records", ""] + generic[start:]
    paths["markdown"].write_text("\n".join(lines) + "\n")
    return paths
