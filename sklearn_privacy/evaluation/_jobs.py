"""The motion evaluation job behind ``sklearn-privacy evaluate motion`` and the benchmark.

It loads a motion data set, cuts windows, builds the protectors and attackers by name,
runs :func:`~sklearn_privacy.evaluation.privacy_utility_report` (utility on unseen
people, privacy against adaptive and static attackers on other recordings of the same
people) and writes the records, a Markdown table and the privacy-utility plot.
"""

from pathlib import Path

# Only light imports at module level: the command's ``--help`` reads the tables below
# without loading numpy, pandas, scikit-learn or torch; the functions import what they use.

__all__ = [
    "APPS",
    "ATTACKERS",
    "CHOOSE_RULES",
    "DEFAULT_APPS",
    "DEFAULT_ATTACKERS",
    "DEFAULT_PROTECTORS",
    "PROFILES",
    "PROTECTORS",
    "choose_protector",
    "evaluate_motion",
    "fit_chosen_protector",
    "load_motion_task",
    "make_apps",
    "make_attackers",
    "make_protectors",
    "summary_table",
    "write_outputs",
]

#: Training budgets. ``quick`` is for smoke tests; ``default`` is the command's default,
#: sized for a CPU with the default protectors, attackers and app on HAPT with
#: non-overlapping windows (step 128); ``full`` trains longer on more folds.
#: ``epochs`` and ``cnn_filters`` size the CNN attacker and app, ``rocket_kernels`` the
#: ROCKET attacker and app (MiniRocket's accuracy grows slowly past a few thousand
#: kernels; its cost grows linearly).
PROFILES = {
    "quick": {"epochs": 8, "utility_splits": 2, "cnn_filters": 16, "rocket_kernels": 1000},
    "default": {"epochs": 20, "utility_splits": 2, "cnn_filters": 32, "rocket_kernels": 4000},
    "full": {"epochs": 40, "utility_splits": 5, "cnn_filters": 64, "rocket_kernels": 10_000},
}


def _anonymizer(schedule, **params):
    def build(random_state, device, epochs):
        from ..motion import MotionAnonymizer

        return MotionAnonymizer(schedule=schedule, random_state=random_state, device=device, **params)

    return build


def _motion(name, *, seeded=False, **params):
    def build(random_state, device, epochs):
        from .. import motion

        extra = {"random_state": random_state} if seeded else {}
        return getattr(motion, name)(**params, **extra)

    return build


#: ``cli name -> (record name, profile, builder(random_state, device, epochs))``.
PROTECTORS = {
    "raw": ("raw", None, lambda random_state, device, epochs: "raw"),
    "anonymizer": ("MotionAnonymizer", "default", _anonymizer("fast")),
    "anonymizer-faithful": ("MotionAnonymizer", "faithful", _anonymizer("faithful")),
    # The best option found against an adaptive attacker (see the benchmark): the
    # decoder sees only the predicted activity (one-hot), so the output carries nothing
    # about the person beyond that label; the activity comes from a CNN head over all
    # channels trained for 4 epochs a round, as accurate as the app itself.
    "anonymizer-best": ("MotionAnonymizer", "best", _anonymizer(
        "fast", task_bottleneck="hard", task_head="cnn", anonymizer_epochs=4,
        reconstruction_weight=1.0,
    )),
    # The replacement autoencoder (HAPT labels): walking up and down stairs are
    # replaced by plain walking; the other activities are kept.
    "replacement": ("ReplacementAutoEncoder", None, _motion(
        "ReplacementAutoEncoder", seeded=True, sensitive=[2, 3], neutral=[1],
    )),
    "downsample-10hz": ("Downsampler(10Hz)", None, _motion("Downsampler", target_rate=10.0)),
    "downsample-5hz": ("Downsampler(5Hz)", None, _motion("Downsampler", target_rate=5.0)),
    "ssa-1": ("SSASmoother(1)", None, _motion("SSASmoother", n_components=1)),
    "ssa-2": ("SSASmoother(2)", None, _motion("SSASmoother", n_components=2)),
    "noise": ("GaussianNoise", None, _motion("GaussianNoise", seeded=True, sigma=0.5)),
}

DEFAULT_PROTECTORS = ("raw", "anonymizer-best", "downsample-5hz", "ssa-1", "noise")


def _cnn(random_state, device, epochs, n_filters, n_kernels):
    from ..adversaries import TimeSeriesCNNClassifier

    return TimeSeriesCNNClassifier(
        n_filters=n_filters, max_epochs=epochs, patience=5, random_state=random_state,
        device=device,
    )


def _features(random_state, device, epochs, n_filters, n_kernels):
    from sklearn.ensemble import ExtraTreesClassifier

    from ..adversaries import make_feature_attacker

    # Extremely randomised trees: as accurate as 200 rounds of gradient boosting on
    # HAPT identity from motion features (32 % against 31 % per window, 30 people) and
    # seconds rather than minutes to fit with 30 classes, which matters when it is
    # retrained for every protector and fold.
    return make_feature_attacker(
        ExtraTreesClassifier(n_estimators=300, n_jobs=-1, random_state=random_state)
    )


def _rocket(random_state, device, epochs, n_filters, n_kernels):
    from ..adversaries import RocketClassifier

    return RocketClassifier(n_kernels=n_kernels, random_state=random_state)


def _dtw(random_state, device, epochs, n_filters, n_kernels):
    from ..adversaries import DTWNeighborsClassifier

    return DTWNeighborsClassifier(random_state=random_state)


#: ``cli name -> (record name, builder(random_state, device, epochs, n_filters,
#: n_kernels))``. The builders import their classes only when called.
ATTACKERS = {
    "cnn": ("cnn", _cnn),
    "features": ("features_et", _features),
    "rocket": ("rocket", _rocket),
    "dtw": ("dtw", _dtw),
}

#: The attackers of the command's default: the two strongest families per unit of CPU
#: time on HAPT (random convolution kernels, and motion features with trees); the
#: ResNet CNN and DTW k-NN are available by name.
DEFAULT_ATTACKERS = ("rocket", "features")

#: Apps (the wanted task), like :data:`ATTACKERS`. ROCKET is the strongest app on HAPT
#: activity (macro-F1 about 0.97 on people never seen, 6 channels).
APPS = {
    "rocket": ("rocket", _rocket),
    "cnn": ("cnn", _cnn),
}
DEFAULT_APPS = ("rocket",)


def _check_names(names, known, what):
    names = list(names)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(
            f"unknown {what} {unknown}; choose among {sorted(known)}" if unknown
            else f"at least one {what} is needed; choose among {sorted(known)}"
        )
    return names


def make_protectors(names=DEFAULT_PROTECTORS, *, epochs=12, device="auto", random_state=0):
    """Build protectors by command-line name.

    Parameters
    ----------
    names : sequence of str, default=DEFAULT_PROTECTORS
        Names among :data:`PROTECTORS` (``"raw"``, ``"anonymizer-best"``, ...).
    epochs : int, default=12
        Unused by the current protectors (their training budgets are their own).
    device : str, default="auto"
        Torch device of the trained protectors.
    random_state : int, default=0
        Seed of the protectors that draw random numbers.

    Returns
    -------
    protectors : dict
        ``record name -> estimator`` (``"raw"`` for no protection).
    profiles : dict
        ``record name -> profile`` (``None`` when the protector has none).
    """
    protectors, profiles = {}, {}
    for name in _check_names(names, PROTECTORS, "protector"):
        record, profile, build = PROTECTORS[name]
        if profile is not None:
            record = f"{record}[{profile}]"
        protectors[record] = build(random_state, device, epochs)
        profiles[record] = profile
    return protectors, profiles


def _build(table, names, what, *, epochs, n_filters, n_kernels, device, random_state):
    return {
        table[name][0]: table[name][1](random_state, device, epochs, n_filters, n_kernels)
        for name in _check_names(names, table, what)
    }


def make_attackers(names=DEFAULT_ATTACKERS, *, epochs=20, n_filters=32, n_kernels=4000,
                   device="auto", random_state=0):
    """Build attackers by command-line name.

    Parameters
    ----------
    names : sequence of str, default=("rocket", "features")
        Names among :data:`ATTACKERS`: ``"rocket"`` (random convolutional kernels,
        MiniRocket, with a linear head), ``"features"`` (extremely randomised trees on
        motion features), ``"cnn"`` (a ResNet-style 1-D CNN) and ``"dtw"`` (nearest
        neighbours under dynamic time warping). Each is built, and its class imported,
        only when named.
    epochs : int, default=20
        Maximum epochs of the CNN.
    n_filters : int, default=32
        Filters of the CNN.
    n_kernels : int, default=4000
        Random kernels of ROCKET.
    device : str, default="auto"
        Torch device of the CNN.
    random_state : int, default=0
        Seed of every attacker.

    Returns
    -------
    attackers : dict
        ``record name -> classifier``.
    """
    return _build(ATTACKERS, names, "attacker", epochs=epochs, n_filters=n_filters,
                  n_kernels=n_kernels, device=device, random_state=random_state)


def make_apps(names=DEFAULT_APPS, *, epochs=20, n_filters=32, n_kernels=4000,
              device="auto", random_state=0):
    """Build apps (classifiers of the wanted task) by command-line name.

    Parameters
    ----------
    names : sequence of str, default=("rocket",)
        Names among :data:`APPS`: ``"rocket"`` and ``"cnn"``, as in
        :func:`make_attackers`.
    epochs, n_filters, n_kernels, device, random_state
        As in :func:`make_attackers`.

    Returns
    -------
    apps : dict
        ``record name -> classifier``.
    """
    return _build(APPS, names, "app", epochs=epochs, n_filters=n_filters,
                  n_kernels=n_kernels, device=device, random_state=random_state)


def _load_recordings(data):
    """Load a motion data set by name or path and say what it is."""
    from .. import datasets

    if data == "hapt":
        return datasets.load_hapt(), "hapt"
    path = Path(data).expanduser()
    if path.is_dir() and any(path.glob("sub*/ADL")):
        return datasets.load_mobifall(path), "mobifall"
    if path.exists() and (
        path.suffix == ".zip" or any(path.glob("**/A_DeviceMotion_data*"))
        or path.name.startswith("A_DeviceMotion_data")
    ):
        return datasets.load_motionsense(path), "motionsense"
    raise ValueError(
        f"data={data!r}: expected 'hapt', a MobiFall folder (sub<N>/ADL/...) or a "
        "MotionSense archive or folder (A_DeviceMotion_data)."
    )


def load_motion_task(data="hapt", *, target="identity", length=128, step=64,
                     magnitude="only", max_subjects=None):
    """Windows, activity labels, sensitive labels and groups of a motion data set.

    Parameters
    ----------
    data : str, default="hapt"
        ``"hapt"`` (the embedded default) or a path to a MobiFall or MotionSense copy.
    target : {"identity", "gender"}, default="identity"
        What the attacker infers.
    length, step : int, default=128, 64
        Window length and step, in samples.
    magnitude : {"only", True, False}, default="only"
        ``"only"``: the papers' orientation-invariant input (``|acc|``, ``|gyro|``).
    max_subjects : int, default=None
        Keep the first subjects only (for quick runs).

    Returns
    -------
    task : Bunch
        ``X``, ``y``, ``sensitive``, ``groups`` (subject, recording, segment),
        ``dataset``, ``sensitive_name``.
    """
    import numpy as np
    from sklearn.utils import Bunch

    from ..datasets import make_windows
    from ..model_selection import window_groups

    recordings, dataset = _load_recordings(data)
    windows = make_windows(recordings, length=length, step=step, magnitude=magnitude)
    keep = np.ones(len(windows.y), dtype=bool)
    if max_subjects is not None:
        keep = np.isin(windows.subject, np.unique(windows.subject)[:max_subjects])
    if target == "identity":
        sensitive = windows.subject
    elif target == "gender":
        gender = windows.attributes["gender"].reindex(windows.subject).to_numpy()
        if np.isnan(gender.astype(float)).any():
            raise ValueError(f"{dataset} has no gender for every subject; use target='identity'.")
        sensitive = gender.astype(int)
    else:
        raise ValueError(f"target must be 'identity' or 'gender'; got {target!r}.")
    groups = window_groups(windows)
    return Bunch(
        X=windows.X[keep], y=windows.y[keep], sensitive=np.asarray(sensitive)[keep],
        groups=groups[keep], dataset=dataset, sensitive_name=target,
        activity_names=windows.get("activity_names"),
    )


def evaluate_motion(task, protectors, attackers, *, apps=None, profiles=None,
                    utility_splits=3, privacy_splits=2, random_state=0, n_jobs=None,
                    verbose=1):
    """Run the privacy-utility evaluation and return its records.

    Utility: each app (by default :func:`make_apps`'s ROCKET app) on subject-disjoint
    folds, retrained on protected data and trained on raw data, and the strongest one
    (``"best"``). Privacy: each attacker on
    recording-disjoint folds (the same people, other recordings), adaptive (retrained
    on protected data) and static (trained on raw data), per window and per recording,
    and the worst case over the attackers (``"worst"``). With ``verbose``, each step is
    printed with the elapsed time and an estimate of the time left. ``n_jobs`` runs
    the (fold, protector) tasks in parallel through joblib (see
    :func:`~sklearn_privacy.evaluation.privacy_utility_report`), also on a Dask cluster
    under ``joblib.parallel_config(backend="dask")``.

    Returns
    -------
    report : DataFrame
        Records in the benchmark format, with a ``profile`` column.
    """
    from ..model_selection import RecordingDisjointSplit, SubjectDisjointSplit
    from ._motion import privacy_utility_report

    if apps is None:
        apps = make_apps(random_state=random_state)
    report = privacy_utility_report(
        protectors, task.X, task.y, task.sensitive, groups=task.groups, apps=apps,
        attackers=attackers, utility_cv=SubjectDisjointSplit(n_splits=utility_splits),
        privacy_cv=RecordingDisjointSplit(n_splits=privacy_splits),
        sensitive_name=task.sensitive_name, dataset=task.dataset,
        random_state=random_state, n_jobs=n_jobs, verbose=verbose,
    )
    report["profile"] = report["protector"].map(profiles or {})
    return report


#: Rules of :func:`choose_protector`.
CHOOSE_RULES = ("first", "private")


def choose_protector(report, rule="first", *, utility_floor=0.0, sensitive_name="identity"):
    """Name of the protector to deploy, chosen from a report by a simple rule.

    Parameters
    ----------
    report : DataFrame or list of dict
        Records of :func:`~sklearn_privacy.evaluation.privacy_utility_report`.
    rule : {"first", "private"}, default="first"
        ``"first"``: the first protector of the report that is not ``"raw"``.
        ``"private"``: among the protectors other than ``"raw"`` whose utility (the
        ``activity_macro_f1`` of the best app, retrained on protected data) is at least
        ``utility_floor``, the one with the lowest worst-case privacy figure: the
        ``{sensitive_name}_advantage`` of the strongest attacker (``"worst"``, or the
        only one), adaptive when the report has adaptive rows, at its worse level
        (the higher of window and recording). Ties go to the first.
    utility_floor : float, default=0.0
        Lowest acceptable macro-F1 for ``rule="private"``.
    sensitive_name : str, default="identity"
        Prefix of the privacy metrics.

    Returns
    -------
    name : str
        A value of the report's ``protector`` column.

    Raises
    ------
    ValueError
        When no protector other than ``"raw"`` qualifies.
    """
    import numpy as np
    import pandas as pd

    if rule not in CHOOSE_RULES:
        raise ValueError(f"rule must be one of {CHOOSE_RULES}; got {rule!r}.")
    frame = pd.DataFrame(report)
    names = [name for name in frame["protector"].unique() if name != "raw"]
    if not names:
        raise ValueError("the report has no protector other than 'raw' to choose.")
    if rule == "first":
        return names[0]
    utility = frame[(frame["metric"] == "activity_macro_f1")
                    & frame["attacker"].isin(["best"])].set_index("protector")["value"]
    advantage = frame[frame["metric"] == f"{sensitive_name}_advantage"]
    attackers = set(advantage["attacker"].dropna())
    attacker = "worst" if "worst" in attackers else next(iter(sorted(attackers)), None)
    mode = "adaptive" if (advantage["mode"] == "adaptive").any() else "static"
    advantage = advantage[(advantage["attacker"] == attacker) & (advantage["mode"] == mode)
                          & advantage["level"].isin(["window", "recording"])]
    worst = advantage.groupby("protector")["value"].max()
    best, best_value = None, np.inf
    for name in names:
        if utility.get(name, -np.inf) < utility_floor or name not in worst.index:
            continue
        if worst[name] < best_value:
            best, best_value = name, worst[name]
    if best is None:
        raise ValueError(
            f"no protector reaches the utility floor {utility_floor:g} (activity macro-F1 "
            "of the best app); lower --utility-floor or add protectors."
        )
    return best


def fit_chosen_protector(task, protector):
    """Fit a clone of ``protector`` on all the windows of ``task``, for deployment.

    The protector receives the task's activity labels and, when its ``fit`` takes them,
    its sensitive labels, as in the evaluation.

    Parameters
    ----------
    task : Bunch
        As returned by :func:`load_motion_task`.
    protector : estimator
        The protector (unfitted; it is cloned).

    Returns
    -------
    fitted : estimator
    """
    from ._motion import _fit_protector

    return _fit_protector(protector, task.X, task.y, task.sensitive)


_SUMMARY_COLUMNS = [
    ("activity_macro_f1", None, None, "F1 (app retrained)"),
    ("activity_macro_f1_raw_app", None, None, "F1 (raw app)"),
    ("{s}_accuracy", "adaptive", "window", "adaptive/window"),
    ("{s}_accuracy", "adaptive", "recording", "adaptive/recording"),
    ("{s}_accuracy", "static", "window", "static/window"),
    ("{s}_accuracy", "static", "recording", "static/recording"),
    ("mse", None, None, "MSE"),
    ("fit_seconds", None, None, "fit s"),
]
_UTILITY = {"activity_macro_f1", "activity_macro_f1_raw_app"}


def summary_table(report, *, sensitive_name="identity", attacker="worst", app="best"):
    """One row per protector with the headline figures of ``report``.

    Parameters
    ----------
    report : DataFrame or list of dict
        Records of :func:`~sklearn_privacy.evaluation.privacy_utility_report`.
    sensitive_name : str, default="identity"
        Prefix of the privacy metrics.
    attacker : str, default="worst"
        Attacker of the privacy columns; ``"worst"`` is the worst case over the
        attackers (the headline).
    app : str, default="best"
        App of the utility columns; ``"best"`` is the strongest app.

    Returns
    -------
    table : DataFrame
        Protectors in rows, figures in columns (NaN where the report has none).
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(report)
    for metric in ("accuracy", "balanced_accuracy"):
        if (frame["metric"] == f"{sensitive_name}_{metric}").any():
            break
    rows = {}
    for protector, part in frame.groupby("protector", sort=False):
        row = {}
        for template, mode, level, label in _SUMMARY_COLUMNS:
            name = template.format(s=sensitive_name).replace("_accuracy", f"_{metric}")
            sel = part["metric"] == name
            if name in _UTILITY:
                sel &= (part["attacker"] == app) | part["attacker"].isna()
            if mode is not None:
                sel &= (part["attacker"] == attacker) & (part["mode"] == mode) & (part["level"] == level)
                label = f"{sensitive_name} {label}"
            values = part.loc[sel, "value"]
            row[label] = values.iloc[0] if len(values) else np.nan
        rows[protector] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def write_outputs(report, output_dir, *, sensitive_name="identity", attacker="worst",
                  chosen=None):
    """Write ``report.json``, ``report.md`` and ``frontier.png`` to ``output_dir``.

    The plot shows the protectors against the adaptive ``attacker`` (by default the
    worst case over the report's attackers), per window and per recording, with the
    chance line and every point labelled.

    Parameters
    ----------
    report : DataFrame or list of dict
        Records of :func:`evaluate_motion`.
    output_dir : str or path-like
        Created when missing.
    sensitive_name : str, default="identity"
        Prefix of the privacy metrics.
    attacker : str, default="worst"
        Attacker of the plot.
    chosen : str or callable, default=None
        Point to mark (see
        :meth:`~sklearn_privacy.evaluation.PrivacyUtilityDisplay.from_report`).

    Returns
    -------
    paths : dict
        ``{"json": ..., "markdown": ..., "plot": ...}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._plot import PrivacyUtilityDisplay
    from ._records import write_benchmark_records

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / "report.json",
        "markdown": output_dir / "report.md",
        "plot": output_dir / "frontier.png",
    }
    write_benchmark_records(report, paths["json"], paths["markdown"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), squeeze=False)
    PrivacyUtilityDisplay.from_report(
        report, privacy_metric=f"{sensitive_name}_advantage", attacker=attacker,
        level=("window", "recording"), chosen=chosen, ax=axes,
    )
    who = "worst-case" if attacker == "worst" else attacker
    fig.suptitle(f"{sensitive_name}: adaptive {who} attacker, other recordings")
    fig.tight_layout()
    fig.savefig(paths["plot"], dpi=120)
    plt.close(fig)
    return paths
