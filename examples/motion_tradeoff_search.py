"""Search the privacy-utility trade-off of a motion protector with GridSearchCV.

Offline, on the embedded HAPT data (8 people, to keep it to a few minutes on a CPU):

1. cut recordings into 128-sample windows of |acc| and |gyro|;
2. put a protector (Gaussian noise of increasing strength) in front of the activity
   app in a Pipeline;
3. score each strength with the app's macro-F1 and a *routed* privacy scorer: an
   adaptive attacker retrained on the protected windows of one recording of each
   person and tested on their other recording, per window and per recording;
4. keep the most useful setting whose privacy stays above a floor, and plot the frontier.

Run: ``python examples/motion_tradeoff_search.py`` (writes ``tradeoff.png`` here).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import sklearn
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_privacy.adversaries import TimeSeriesCNNClassifier, make_feature_attacker
from sklearn_privacy.datasets import load_hapt, make_windows
from sklearn_privacy.metrics import PrivacyScorer, utility_scorer
from sklearn_privacy.evaluation import PrivacyUtilityDisplay
from sklearn_privacy.model_selection import (
    SubjectDisjointSplit,
    best_utility_with_privacy_floor,
    window_groups,
)
from sklearn_privacy.motion import GaussianNoise

sklearn.set_config(enable_metadata_routing=True)  # sensitive labels travel by routing

windows = make_windows(load_hapt(), length=128, step=128, magnitude="only")
keep = windows.subject <= 8
X, activity, person = windows.X[keep], windows.y[keep], windows.subject[keep]
groups = window_groups(windows)[keep]  # (subject, recording, segment) of each window
print(f"{len(X)} windows of {X.shape[1]} samples x {X.shape[2]} channels, 8 people")

pipe = Pipeline([
    ("protect", GaussianNoise()),  # fresh noise on every call: the protective default
    ("app", TimeSeriesCNNClassifier(n_filters=16, max_epochs=5, random_state=0)),
])
# Gradient boosting on motion features: a fast attacker of another family than the app.
attacker = make_feature_attacker(random_state=1)
scoring = {
    "utility": utility_scorer(),  # macro-F1 of the app on people it never saw
    "privacy": PrivacyScorer(attacker, mode="adaptive", level="window", random_state=0),
}
search = GridSearchCV(
    pipe,
    {"protect__sigma": [0.0, 1.0, 3.0]},
    scoring=scoring,
    refit=best_utility_with_privacy_floor(0.5),
    cv=SubjectDisjointSplit(n_splits=2),
)
search.fit(X, activity, sensitive_features=person, groups=groups)

for params, utility, privacy in zip(search.cv_results_["params"],
                                    search.cv_results_["mean_test_utility"],
                                    search.cv_results_["mean_test_privacy"]):
    print(f"{params}: activity macro-F1 {utility:.3f}, privacy (1 - adaptive advantage) "
          f"{privacy:.3f}")
print("chosen:", search.best_params_)

display = PrivacyUtilityDisplay.from_cv_results(search.cv_results_)
display.figure_.savefig(Path(__file__).with_name("tradeoff.png"), dpi=100)
