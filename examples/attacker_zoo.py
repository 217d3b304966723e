"""Four attacker families against identity on raw motion windows.

Offline, on the embedded HAPT data (6 people, to keep it well under a minute on a CPU):
the 6 raw channels cut into 128-sample windows every 64 samples; each attacker is
trained on one recording of each person and tested on their other recording
(recording-disjoint), per window and per recording (windows pooled by summed
log-probability). A protector is as private as its worst case over such attackers.

Run: ``python examples/attacker_zoo.py``. ``RocketClassifier`` needs the optional
package aeon (``pip install "sklearn-privacy[rocket]"``); it is skipped without it.
The kernels and training sets are small here; ``benchmarks/attacker_zoo.py`` measures
the full-size attackers on all 30 people.
"""

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier

from sklearn_privacy.adversaries import (
    DTWNeighborsClassifier,
    RocketClassifier,
    TimeSeriesCNNClassifier,
    make_feature_attacker,
)
from sklearn_privacy.datasets import load_hapt, make_windows
from sklearn_privacy.metrics import chance_level, pool_by_recording
from sklearn_privacy.model_selection import RecordingDisjointSplit, window_groups

windows = make_windows(load_hapt(), length=128, step=64)
keep = windows.subject <= 6
X, person, groups = windows.X[keep], windows.subject[keep], window_groups(windows)[keep]
train, test = next(RecordingDisjointSplit(n_splits=2).split(X, person, groups))

attackers = {
    "ROCKET (MiniRocket, 2,000 kernels)": RocketClassifier(n_kernels=2_000, random_state=0),
    "features + extra trees": make_feature_attacker(
        ExtraTreesClassifier(n_estimators=100, random_state=0)
    ),
    "DTW 5-NN (30 windows a person)": DTWNeighborsClassifier(
        n_neighbors=5, sakoe_chiba_radius=3, downsample=4, max_train_per_class=30,
        random_state=0,
    ),
    "1-D CNN (5 epochs)": TimeSeriesCNNClassifier(max_epochs=5, random_state=0),
}

print(f"{len(train)} training and {len(test)} test windows of {len(np.unique(person))} people")
print(f"chance: {chance_level(person[test]):.2f} per window")
for name, attacker in attackers.items():
    try:
        if isinstance(attacker, (RocketClassifier, TimeSeriesCNNClassifier)):
            attacker.fit(X[train], person[train], groups=groups[train])
        else:
            attacker.fit(X[train], person[train])
    except ImportError as exc:  # aeon is an optional extra
        print(f"{name}: skipped ({exc})")
        continue
    with np.errstate(divide="ignore"):  # a probability of 0 is a log-probability of -inf
        log_proba = np.log(attacker.predict_proba(X[test]))
    per_window = np.mean(attacker.classes_[log_proba.argmax(axis=1)] == person[test])
    true, pred, _ = pool_by_recording(
        person[test], log_proba, groups[test], method="log_proba", classes=attacker.classes_
    )
    print(f"{name}: {per_window:.2f} per window, {np.mean(true == pred):.2f} per recording")
