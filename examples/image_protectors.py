"""Hide the content of photos from a classifier: ColorFool, P-FGSM and EdgeFool on CIFAR-10.

A small CNN is trained to recognise the CIFAR-10 class (the attribute we want to hide).
Three protectors then alter test photos that it recognises correctly:

- ``ColorFool`` (black-box: it only needs the predicted labels) recolours the image in
  CIE Lab, trying stronger and stronger random colour shifts until the label changes;
- ``PrivateFGSM`` (white-box: it needs gradients) adds a tiny perturbation, at most 8/255
  per pixel, that pushes the image towards an unlikely class;
- ``EdgeFool`` (white-box) trains a small filter network per image that enhances its
  details until the label changes, here within a fidelity floor of 30 dB PSNR.

Success is measured the honest way: on the returned uint8 images, through the
classifier's own preprocessing, after the protector has finished. A second, independently
trained CNN of another architecture shows how much of the protection transfers to a model
the protector never saw.

Fooling one classifier is not privacy. The last step trains fresh CNNs on clean and on
protected photos: an attacker who knows the photos are protected simply retrains on them
(the *adaptive* attacker), and wins back much of the accuracy the protection took away.

The protocol is the library's :func:`~sklearn_privacy.evaluation.image_privacy_report`
(the ``sklearn-privacy evaluate image`` command runs it with more methods). Offline, on
the real data in ``shared/data/cifar10`` (pass another folder as the first argument).
About three minutes on one CPU core; on a busy machine run it with
``OMP_NUM_THREADS=1``.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_privacy.adversaries import ImageCNNClassifier
from sklearn_privacy.datasets import load_cifar10
from sklearn_privacy.evaluation import image_privacy_report
from sklearn_privacy.image import ColorFool, EdgeFool, PrivateFGSM

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT

# 1. Data: 150 training images per class, and a few test images per class.
train = load_cifar10(data_dir, subset="train", max_per_class=150)
test = load_cifar10(data_dir, subset="test", max_per_class=20)
print(f"CIFAR-10: {len(train.target)} training images, {len(test.target)} test images")


def cnn(architecture="small", n_filters=16, seed=0, max_epochs=6, patience=2):
    """An unfitted CNN; the report trains it (it owns its resize and normalisation)."""
    return ImageCNNClassifier(architecture=architecture, n_filters=n_filters,
                              max_epochs=max_epochs, patience=patience, lr=2e-3,
                              random_state=seed)


# 2. The protectors. Left without a classifier, each attacks the report's classifier.
protectors = {
    "ColorFool": ColorFool(random_state=0),
    "PrivateFGSM": PrivateFGSM(random_state=0),
    # Unclipped gradients (beyond the paper) fool more images within the floor.
    "EdgeFool": EdgeFool(min_psnr=30.0, max_iter=150, max_grad_norm=None, random_state=0),
    # One filter, fitted once on 64 training photos, then a single forward pass: fast
    # enough to protect the whole training set of an adaptive attacker.
    "EdgeFool-universal": EdgeFool(mode="universal", max_iter=20, batch_size=16,
                                   random_state=0),
}

# 3. The protocol: the attacked CNN and an unseen "resnet" are trained on the training
#    photos; the protectors alter 30 test photos the attacked CNN gets right (elsewhere
#    "success" is meaningless), and success is measured afterwards, on the saved uint8
#    images. Fooling one classifier is not privacy: fresh CNNs are also trained on clean
#    and on protected photos (static and adaptive attackers) and scored on all test
#    photos protected by the universal filter.
records = image_privacy_report(
    protectors, cnn(), train.images, train.target, test.images, test.target,
    transfer={"resnet": cnn("resnet", n_filters=8)},
    adaptive={"small": cnn(seed=1, max_epochs=15, patience=3)},
    adaptive_protectors=["EdgeFool-universal"], references=["GaussianNoise"],
    n_images=30, n_protector_fit={"EdgeFool-universal": 64, "ColorFool": 1,
                                  "PrivateFGSM": 1, "EdgeFool": 1},
    dataset="cifar10", classifier_name="small", random_state=0,
)
frame = pd.DataFrame(records)

print("\nclean accuracy on the test photos: " + ", ".join(
    f"{r.attacker} {r.value:.1%}" for r in
    frame[frame.metric == "clean_accuracy"].itertuples()))
figures = frame[frame.subset.isin(["correct", "all", np.nan]) & frame.matched_to.isna()]
figures = figures[figures.protector.isin(list(protectors))]
figures = figures.assign(column=np.where(figures["mode"] == "transfer",
                                         "transfer_" + figures.attacker.astype(str),
                                         figures.metric))
table = figures.pivot_table(index="protector", columns="column", values="value",
                            sort=False)
columns = ["success_rate", "transfer_resnet", "top3_out", "success_rate_jpeg75", "psnr",
           "ssim", "linf", "transform_per_second"]
print(table[columns].round(3).to_string())

# 4. The figure that counts: attackers trained on clean photos (static) and retrained on
#    protected photos (adaptive), scored on protected test photos.
attackers = frame[(frame.subset == "adaptive_test") & (frame.metric == "class_accuracy")]
print(f"\nattackers trained on {len(train.target)} photos, accuracy on all "
      f"{len(test.target)} test photos (chance 10 %):")
for r in attackers.itertuples():
    label = r.protector if pd.isna(r.matched_to) else f"noise at {r.matched_to}'s PSNR"
    print(f"  {label:40s} {r.mode:9s} {r.value:6.1%}")
