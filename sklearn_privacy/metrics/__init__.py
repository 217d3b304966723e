"""Privacy and distortion metrics, and scorers that receive sensitive labels by routing.

- :class:`PrivacyScorer`: ``1 - advantage`` of an adaptive or static attacker (or the
  worst case over several attackers and pooling rules) on a fitted protector pipeline,
  at window or recording level, with ``sensitive_features`` and ``groups`` requested
  through metadata routing.
- :func:`utility_scorer`: the app's macro-F1 on protected data.
- :func:`attacker_advantage`, :func:`attack_score`, :func:`chance_level`: advantage over
  chance; :func:`pool_by_recording`: recording-level pooling of window outputs
  (vote, mean probability, summed log-probabilities).
- :func:`attack_roc_auc`: one-vs-rest ROC AUC of an attacker's scores;
  :func:`tpr_at_fpr`: its true-positive rate at a low false-positive rate
  (re-identification as verification); :func:`attribute_inference_gain`: gain over
  imputing the training majority class or mean.
- :func:`attack_metrics`: every figure of one attack, per level and pooling rule, as
  tidy rows (with the worst-case rule).
- :func:`reidentification_rank`, :func:`mean_reidentification_rank`: DTW re-identification.
- :func:`mse`, :func:`snr_db`: distortion of motion windows.
- :func:`psnr`, :func:`ssim`, :func:`ciede2000_mean`, :func:`naturalness_score`,
  :func:`fit_naturalness_model`: image quality.
"""

from ._advantage import attack_score, attacker_advantage, chance_level, pool_by_recording
from ._attack import attack_metrics, attack_roc_auc, attribute_inference_gain, tpr_at_fpr
from ._distortion import mse, snr_db
from ._image_quality import (
    NaturalnessModel,
    ciede2000_mean,
    fit_naturalness_model,
    naturalness_score,
    psnr,
    ssim,
)
from ._reid import mean_reidentification_rank, reidentification_rank
from ._scorer import PrivacyScorer, utility_scorer

__all__ = [
    "NaturalnessModel",
    "PrivacyScorer",
    "attack_metrics",
    "attack_roc_auc",
    "attack_score",
    "attacker_advantage",
    "attribute_inference_gain",
    "chance_level",
    "ciede2000_mean",
    "fit_naturalness_model",
    "mean_reidentification_rank",
    "mse",
    "naturalness_score",
    "pool_by_recording",
    "psnr",
    "reidentification_rank",
    "snr_db",
    "ssim",
    "tpr_at_fpr",
    "utility_scorer",
]
