"""Shared machinery of the classifier-attacking image protectors (private)."""

import hashlib

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from ..utils._torch import check_random_state_local

from ._classifier import ImageClassifier, images_to_tensor, is_fitted_classifier

__all__ = [
    "CLASSIFIER_CONSTRAINT",
    "IMAGE_PROTECTOR_EXPECTED_FAILED_CHECKS",
    "ImageAttackMixin",
    "image_groups",
    "image_seeds",
    "quantize",
]

#: ``_parameter_constraints`` entry of a protector's ``classifier``.
CLASSIFIER_CONSTRAINT = [
    ImageClassifier,
    torch.nn.Module,
    HasMethods(["torch_model"]),
    HasMethods(["predict"]),
]


def quantize(t, mode):
    """Map floats in [0, 1] to the 256 uint8 levels, kept as floats ``0..255``.

    ``"round"`` rounds to the nearest level; ``"floor"`` truncates as ``uint8`` casts do
    (with a 1e-4 tolerance so that exact levels ``k/255`` stay ``k`` despite float error).
    """
    v = t.clamp(0.0, 1.0) * 255.0
    v = torch.round(v) if mode == "round" else torch.floor(v + 1e-4)
    return v.clamp(0.0, 255.0)


def image_groups(images, batch_size):
    """Yield ``(indices, float tensor (B, 3, H, W))`` chunks of same-size images.

    ``images`` is a float ``(n, H, W, 3)`` array or a list of ``(H, W, 3)`` arrays;
    list images are grouped by shape, keeping each group in input order.
    """
    if isinstance(images, np.ndarray):
        groups = [np.arange(images.shape[0])]
    else:
        shapes = {}
        for i, img in enumerate(images):
            shapes.setdefault(img.shape, []).append(i)
        groups = [np.asarray(idx) for idx in shapes.values()]
    for idx in groups:
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            if isinstance(images, np.ndarray):
                arr = images[chunk]
            else:
                arr = np.stack([images[i] for i in chunk])
            yield chunk, images_to_tensor(arr)


def image_seeds(images, random_state):
    """One random seed per image, from ``random_state`` and the image's own content.

    The seed of an image does not depend on its position in the batch nor on the other
    images, so that ``transform(X[perm])`` equals ``transform(X)[perm]``. It mixes one
    draw of ``random_state`` with a hash of the image's 8-bit levels and shape (the same
    for a uint8 image and its float copy ``X / 255``); identical images get the same
    seed.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, 3) or list of (H, W, 3) arrays
        Float images in [0, 1], as validated.
    random_state : int, RandomState instance or None
        Drawn from once per call.

    Returns
    -------
    seeds : list of int
        Non-negative 64-bit seeds, one per image, in input order.
    """
    base = int(check_random_state_local(random_state).randint(np.iinfo(np.int32).max))
    seeds = []
    for img in images:
        levels = np.round(np.asarray(img, dtype=np.float32) * np.float32(255.0)).astype(np.uint8)
        digest = hashlib.blake2b(levels.tobytes(), digest_size=8)
        digest.update(repr(levels.shape).encode())
        content = int.from_bytes(digest.digest(), "little")
        state = np.random.SeedSequence([base, content]).generate_state(1, np.uint64)[0]
        seeds.append(int(state))
    return seeds


class ImageAttackMixin:
    """fit/transform scaffolding shared by ColorFool and PrivateFGSM (``BaseProtector`` subclasses)."""

    input_kind = "image"

    def _resolve_classifier(self, X, sensitive_features):
        """Set ``classifier_`` (an :class:`ImageClassifier`), training a surrogate if needed."""
        self.classifier_ = self._build_classifier(self.classifier, X, sensitive_features)
        return self.classifier_

    def _build_classifier(self, clf, X, sensitive_features):
        """An :class:`ImageClassifier` of ``clf``, trained as a surrogate if it is unfitted."""
        if clf is None:
            raise ValueError(
                f"{type(self).__name__} needs a classifier to attack: pass classifier=... "
                "(a torch module, a fitted skorch net or scikit-learn classifier, an "
                "ImageClassifier, or an unfitted estimator to train as a surrogate)."
            )
        settings = {}
        if isinstance(clf, ImageClassifier):
            settings = clf._settings()
            clf = clf.classifier
        n_images = len(X)
        s = self._check_sensitive(
            sensitive_features, n_images, required=False, name=type(self).__name__
        )
        if not is_fitted_classifier(clf):
            if s is None:
                self._check_sensitive(None, n_images, required=True, name=(
                    f"{type(self).__name__} with an unfitted classifier (a surrogate to train)"
                ))
            if s.ndim == 2:
                if s.shape[1] != 1:
                    raise ValueError(
                        "a surrogate classifier is trained on one sensitive attribute; got "
                        f"sensitive_features of shape {s.shape}."
                    )
                s = s[:, 0]
            clf = clone(clf).fit(X, s)
        return ImageClassifier(clf, device=self.device_, **settings)

    def transform(self, X):
        """Protect images (see :meth:`transform_with_diagnostics` for per-image figures).

        Parameters
        ----------
        X : array-like of shape (n_images, H, W, 3) or list of (H, W, 3) arrays
            uint8 images or floats in [0, 1].

        Returns
        -------
        X_protected : ndarray or list
            Same layout and dtype convention as ``X``: uint8 in, uint8 out; float in
            (float16, float32 or float64), float32 out on the 256 levels ``k / 255``.
            Sample count and order are kept. The fitted state is not changed.
        """
        return self.transform_with_diagnostics(X)[0]

    def _transform_setup(self, X):
        check_is_fitted(self, "classifier_")
        images, was_uint8 = self._validate_images(X, allow_different_sizes=isinstance(X, (list, tuple)))
        return images, was_uint8

    @staticmethod
    def _assemble(outputs, n_images, images, was_uint8):
        """Collect per-image uint8-level float arrays ``(H, W, 3)`` into the output layout."""
        if isinstance(images, np.ndarray):
            out = np.stack([outputs[i] for i in range(n_images)])
            return out.astype(np.uint8) if was_uint8 else (out / 255.0).astype(np.float32)
        if was_uint8:
            return [outputs[i].astype(np.uint8) for i in range(n_images)]
        return [(outputs[i] / 255.0).astype(np.float32) for i in range(n_images)]


#: scikit-learn checks an image protector is expected to fail. Empty: ``BaseProtector``
#: declares no 2-D input support for image protectors, so scikit-learn skips its tabular
#: checks (they cannot apply to ``(n, H, W, 3)`` images) instead of running them.
IMAGE_PROTECTOR_EXPECTED_FAILED_CHECKS: dict[str, str] = {}
