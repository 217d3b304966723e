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

Offline, on the real data in ``shared/data/cifar10`` (pass another folder as the first
argument). About three minutes on one CPU core; on a busy machine run it with
``OMP_NUM_THREADS=1``.
"""

import sys
import time
from pathlib import Path

import numpy as np

from sklearn_privacy.adversaries import ImageCNNClassifier
from sklearn_privacy.datasets import load_cifar10
from sklearn_privacy.image import ColorFool, EdgeFool, PrivateFGSM, topk_out_rate
from sklearn_privacy.metrics import psnr, ssim

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT

# 1. Data: 150 training images per class, and a few test images per class.
train = load_cifar10(data_dir, subset="train", max_per_class=150)
test = load_cifar10(data_dir, subset="test", max_per_class=20)
print(f"CIFAR-10: {len(train.target)} training images, {len(test.target)} test images")

# 2. The classifier to fool (it owns its resize and normalisation) and an unseen one.
t0 = time.perf_counter()
clf = ImageCNNClassifier(n_filters=16, max_epochs=6, patience=2, lr=2e-3, random_state=0)
clf.fit(train.images, train.target)
other = ImageCNNClassifier(architecture="resnet", n_filters=8, max_epochs=6, patience=2,
                           lr=2e-3, random_state=0)
other.fit(train.images, train.target)
print(f"trained two CNNs in {time.perf_counter() - t0:.0f}s; test accuracy: "
      f"attacked {np.mean(clf.predict(test.images) == test.target):.1%}, "
      f"unseen 'resnet' {np.mean(other.predict(test.images) == test.target):.1%}")

# 3. Protect only images the classifier gets right: elsewhere "success" is meaningless.
correct = np.flatnonzero(clf.predict(test.images) == test.target)[:30]
X, y = test.images[correct], test.target[correct]
both = other.predict(X) == y  # transfer is counted where the unseen model was right too

protectors = {
    "ColorFool": ColorFool(clf, random_state=0),
    "PrivateFGSM": PrivateFGSM(clf, random_state=0),
    # Unclipped gradients (beyond the paper) fool more images within the floor.
    "EdgeFool": EdgeFool(clf, min_psnr=30.0, max_iter=150, max_grad_norm=None,
                         random_state=0),
}
print(f"\nprotecting {len(y)} correctly classified test images (transfer: counted on the "
      f"{both.sum()} of them the unseen model gets right too)")
print(f"{'method':12s} {'success':>8s} {'top-3 out':>9s} {'transfer':>9s} "
      f"{'PSNR dB':>8s} {'SSIM':>6s} {'L-inf':>6s} {'images/s':>9s}")
for name, protector in protectors.items():
    t0 = time.perf_counter()
    X_protected = protector.fit(X).transform(X)  # fit only wraps the trained classifier
    seconds = time.perf_counter() - t0
    # Measured afterwards, on the saved uint8 images, not inside the attack loop.
    success = np.mean(clf.predict(X_protected) != y)
    transfer = np.mean(other.predict(X_protected[both]) != y[both])
    top3 = topk_out_rate(protector.classifier_, X_protected, y, k=3)
    linf = np.abs(X_protected.astype(int) - X.astype(int)).max()
    print(f"{name:12s} {success:8.1%} {top3:9.1%} {transfer:9.1%} "
          f"{psnr(X, X_protected):8.1f} {ssim(X, X_protected):6.3f} {linf:4d}/255 "
          f"{len(X) / seconds:9.1f}")

# 4. The figure that counts: an attacker who knows the photos are protected retrains on
#    protected photos. One universal EdgeFool filter (fitted once, then a single forward
#    pass) is fast enough to protect the whole training set and every test photo; fresh
#    CNNs are trained on the clean and on the protected training photos.
universal = EdgeFool(clf, mode="universal", max_iter=20, batch_size=16, random_state=0)
universal.fit(train.images[:64])
P_train, P_test = universal.transform(train.images), universal.transform(test.images)


def attacker():
    return ImageCNNClassifier(n_filters=16, max_epochs=15, patience=3, lr=2e-3,
                              random_state=1)


clean_attacker = attacker().fit(train.images, train.target)
adaptive_attacker = attacker().fit(P_train, train.target)
print(f"\nattackers trained on {len(train.target)} photos, accuracy on all "
      f"{len(test.target)} test photos (chance 10 %):")
for label, model, images in (
    ("trained on clean photos, clean test photos", clean_attacker, test.images),
    ("trained on clean photos, protected test photos (static)", clean_attacker, P_test),
    ("retrained on protected photos (adaptive)", adaptive_attacker, P_test),
):
    print(f"  {label:56s} {np.mean(model.predict(images) == test.target):6.1%}")
