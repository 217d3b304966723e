"""Train the motion anonymizer and measure it against an adaptive attacker.

Offline, on the embedded HAPT data (8 people, non-overlapping windows, to keep it to a
few minutes on a CPU):

1. cut recordings into 128-sample windows of |acc| and |gyro|;
2. compare raw data, the published anonymizing autoencoder (fast schedule) and its
   hard task bottleneck (the decoder sees only the predicted activity);
3. utility: an activity app retrained on protected windows, tested on people it never
   saw; privacy: a feature attacker retrained on protected windows of one recording of
   each person and tested on their other recording (adaptive), per window and per
   recording, with the protector never seeing the test recordings.

Run: ``python examples/motion_anonymizer.py`` (about 4 CPU-minutes). One run (8 people,
seed 0, one torch thread) printed an identity accuracy per window / per recording of
46 % / 94 % on raw data, 35 % / 94 % with the published loss and 16 % / 25 % with the hard
bottleneck (chance 14 % / 12.5 %), at activity macro-F1 0.53, 0.49 and 0.64: the hard
bottleneck's CNN activity head is a stronger activity classifier than this small app
(the 30-person benchmark in ``benchmarks/results/motion_privacy.md`` gives 0.83 against
0.81 raw).
"""

from sklearn_privacy.adversaries import TimeSeriesCNNClassifier, make_feature_attacker
from sklearn_privacy.datasets import load_hapt, make_windows
from sklearn_privacy.evaluation import privacy_utility_report
from sklearn_privacy.model_selection import (
    RecordingDisjointSplit,
    SubjectDisjointSplit,
    window_groups,
)
from sklearn_privacy.motion import MotionAnonymizer

windows = make_windows(load_hapt(), length=128, step=128, magnitude="only")
keep = windows.subject <= 8
X, activity, person = windows.X[keep], windows.y[keep], windows.subject[keep]
groups = window_groups(windows)[keep]  # (subject, recording, segment) of each window

protectors = {
    "raw": "raw",
    "published loss": MotionAnonymizer(random_state=0),
    "hard bottleneck": MotionAnonymizer(task_bottleneck="hard", task_head="cnn",
                                        anonymizer_epochs=4, reconstruction_weight=1.0,
                                        random_state=0),
}
report = privacy_utility_report(
    protectors, X, activity, person, groups=groups,
    app=TimeSeriesCNNClassifier(n_filters=32, max_epochs=10, random_state=0),
    attackers={"features": make_feature_attacker(random_state=0)},
    utility_cv=SubjectDisjointSplit(n_splits=2),     # utility: other people
    privacy_cv=RecordingDisjointSplit(n_splits=2),   # privacy: other recordings, same people
    random_state=0, verbose=1,
)
# "best": the strongest app; "worst": the strongest attacker (here the only one).
utility = report.query("metric == 'activity_macro_f1' and attacker == 'best'").set_index(
    "protector")["value"]
privacy = report.query(
    "metric == 'identity_accuracy' and mode == 'adaptive' and attacker == 'worst'").pivot(
    index="protector", columns="level", values="value")
print(privacy.assign(activity_macro_f1=utility).round(3).to_string())
chance = report.query("metric == 'identity_accuracy'").groupby("level")["chance"].first()
print("chance (majority person):", chance.round(3).to_dict())
