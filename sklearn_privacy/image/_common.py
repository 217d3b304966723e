"""Shared machinery of the classifier-attacking image protectors (private)."""

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from ._classifier import ImageClassifier, images_to_tensor, is_fitted_classifier

__all__ = [
    "CLASSIFIER_CONSTRAINT",
    "IMAGE_PROTECTOR_EXPECTED_FAILED_CHECKS",
    "ImageAttackMixin",
    "image_groups",
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
