"""Attacker zoo: how strong is each motion attacker family on raw HAPT?

Writes ``benchmarks/results/attacker_zoo.json`` (records in the format of DESIGN.md) and
``attacker_zoo.md``. Raw HAPT, windows of 128 samples every 64, both the 6 raw channels
and the two magnitudes (acc_mag, gyro_mag):

- identity (who is this?) on other recordings of the same people
  (``RecordingDisjointSplit(n_splits=2)``), per window and per recording (windows
  pooled by majority vote and by summed log-probability), for each attacker;
- activity macro-F1 on people never seen (``SubjectDisjointSplit(n_splits=3)``), 6
  channels, for the ROCKET classifier (the app).

Also recorded per attack: the log-loss of the window probabilities (how calibrated
they are; for the ROCKET head also without its fitted temperature) and the fit and
predict times. Run ``python benchmarks/attacker_zoo.py --help``.

The committed results come from separate runs on a shared, busy 2-core machine, with
fewer ROCKET kernels and DTW training windows than the defaults so that they fit the
time at hand: ``--attackers rocket_minirocket --apps "" --n-kernels 4000`` (identity),
``--attackers "" --apps rocket_minirocket --kinds 6ch --n-kernels 1000`` (activity),
``--attackers features_et --apps ""`` and
``--attackers dtw_knn --apps "" --dtw-train-per-class 8``, merged with ``--append``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.metrics import f1_score

from sklearn_privacy.adversaries import (
    DTWNeighborsClassifier,
    RocketClassifier,
    make_feature_attacker,
)
from sklearn_privacy.datasets import load_hapt, make_windows
from sklearn_privacy.metrics import attack_score, chance_level, pool_by_recording
from sklearn_privacy.evaluation import environment_record, write_benchmark_records
from sklearn_privacy.model_selection import (
    RecordingDisjointSplit,
    SubjectDisjointSplit,
    window_groups,
)

RESULTS = Path(__file__).resolve().parent / "results"


def _record(metric, value, *, attacker, level=None, std=None, n_folds=None, chance=None,
            windows="6ch", **extra):
    return {"dataset": "hapt", "protector": "raw", "metric": metric, "attacker": attacker,
            "mode": "adaptive", "level": level, "value": float(value),
            "std": None if std is None else float(std), "n_folds": n_folds,
            "chance": None if chance is None else float(chance), "windows": windows, **extra}


def make_attackers(names, n_jobs, *, n_kernels=10_000, dtw_train_per_class=15, seed=0):
    """The attackers of the zoo, by name."""
    zoo = {
        "rocket_minirocket": lambda: RocketClassifier(
            variant="minirocket", n_kernels=n_kernels, n_jobs=n_jobs, random_state=seed),
        "rocket_multirocket": lambda: RocketClassifier(
            variant="multirocket", n_kernels=max(84, n_kernels // 8), n_jobs=n_jobs,
            random_state=seed),
        "dtw_knn": lambda: DTWNeighborsClassifier(
            # tslearn's DTW costs about 40 us of CPU per pair of windows: a few
            # training windows per person keep a fold to minutes.
            n_neighbors=5, weights="distance", sakoe_chiba_radius=3, downsample=4,
            max_train_per_class=dtw_train_per_class, random_state=seed),
        "features_et": lambda: make_feature_attacker(
            ExtraTreesClassifier(n_estimators=300, n_jobs=n_jobs, random_state=seed)),
    }
    return {name: zoo[name] for name in names}


def _fit(attacker, X, y, groups):
    if isinstance(attacker, (RocketClassifier, DTWNeighborsClassifier)):
        return attacker.fit(X, y, groups=groups)
    return attacker.fit(X, y)


def _log_proba(attacker, X):
    with np.errstate(divide="ignore"):
        return np.log(np.clip(attacker.predict_proba(X), 1e-300, None))


def _log_loss(log_proba, y, classes):
    cols = np.searchsorted(classes, y)
    return float(-np.mean(np.maximum(log_proba[np.arange(len(y)), cols], np.log(1e-15))))


def identity(windows, kind, attackers, log):
    """Identity attack of every attacker on recording-disjoint folds."""
    X, y, groups = windows.X, windows.subject, window_groups(windows)
    folds = list(RecordingDisjointSplit(n_splits=2).split(X, y, groups))
    records = []
    for name, make in attackers.items():
        scores = {"window": [], "vote": [], "log_proba": [], "log_loss": [], "log_loss_t1": [],
                  "fit_s": [], "predict_s": []}
        chances = {"window": [], "recording": []}
        for k, (train, test) in enumerate(folds):
            t0 = time.perf_counter()
            clf = _fit(make(), X[train], y[train], groups[train])
            t1 = time.perf_counter()
            log_proba = _log_proba(clf, X[test])
            t2 = time.perf_counter()
            classes = clf.classes_
            y_pred = classes[np.argmax(log_proba, axis=1)]
            scores["window"].append(attack_score(y[test], y_pred, metric="accuracy")["score"])
            chances["window"].append(chance_level(y[test], metric="accuracy"))
            for method, outputs in (("vote", y_pred), ("log_proba", log_proba)):
                yt, yp, _ = pool_by_recording(y[test], outputs, groups[test], method=method,
                                              classes=classes)
                scores[method].append(float(np.mean(yt == yp)))
            chances["recording"].append(chance_level(yt, metric="accuracy"))
            scores["log_loss"].append(_log_loss(log_proba, y[test], classes))
            if isinstance(clf, RocketClassifier):
                # The same ridge scores under a plain softmax (no fitted temperature).
                untempered = log_softmax(log_proba / clf.temperature_, axis=1)
                scores["log_loss_t1"].append(_log_loss(untempered, y[test], classes))
                yt, yp, _ = pool_by_recording(y[test], untempered, groups[test],
                                              method="log_proba", classes=classes)
                scores.setdefault("log_proba_t1", []).append(float(np.mean(yt == yp)))
            scores["fit_s"].append(t1 - t0)
            scores["predict_s"].append(t2 - t1)
            log(f"  {kind} {name} fold {k}: window {scores['window'][-1]:.3f}, "
                f"vote {scores['vote'][-1]:.3f}, log_proba {scores['log_proba'][-1]:.3f}, "
                f"log-loss {scores['log_loss'][-1]:.3f}, fit {t1 - t0:.0f} s, "
                f"predict {t2 - t1:.0f} s")

        def add(metric, key, level=None, chance=None, **extra):
            vals = np.asarray(scores[key])
            records.append(_record(metric, vals.mean(), attacker=name, level=level,
                                   std=vals.std(), n_folds=len(vals), chance=chance,
                                   windows=kind, **extra))

        add("identity_accuracy", "window", "window", np.mean(chances["window"]))
        add("identity_accuracy", "vote", "recording", np.mean(chances["recording"]),
            pooling="vote")
        add("identity_accuracy", "log_proba", "recording", np.mean(chances["recording"]),
            pooling="log_proba")
        add("identity_log_loss", "log_loss", "window", np.log(len(np.unique(y))))
        if scores["log_loss_t1"]:
            add("identity_log_loss", "log_loss_t1", "window", np.log(len(np.unique(y))),
                head="ridge softmax without temperature")
            add("identity_accuracy", "log_proba_t1", "recording", np.mean(chances["recording"]),
                pooling="log_proba", head="ridge softmax without temperature")
        add("fit_seconds", "fit_s")
        add("predict_seconds", "predict_s")
    return records


def activity(windows, kind, attackers, log):
    """Activity macro-F1 of every attacker (as the app) on people never seen."""
    X, y, groups = windows.X, windows.y, window_groups(windows)
    folds = list(SubjectDisjointSplit(n_splits=3).split(X, y, groups))
    records = []
    for name, make in attackers.items():
        f1s = []
        for k, (train, test) in enumerate(folds):
            clf = _fit(make(), X[train], y[train], groups[train])
            f1s.append(f1_score(y[test], clf.predict(X[test]), average="macro"))
            log(f"  {kind} {name} activity fold {k}: macro-F1 {f1s[-1]:.3f}")
        chance = 1.0 / len(np.unique(y))
        records.append(_record("activity_macro_f1", np.mean(f1s), attacker=name,
                               std=np.std(f1s), n_folds=len(f1s), chance=chance,
                               windows=kind, mode=None,
                               n_kernels=getattr(make(), "n_kernels", None)))
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", default="rocket_minirocket,features_et,dtw_knn",
                        help="identity attackers, in order (also: rocket_multirocket)")
    parser.add_argument("--apps", default="rocket_minirocket", help="activity classifiers")
    parser.add_argument("--kinds", default="6ch,magnitude", help="window kinds")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--n-kernels", type=int, default=10_000,
                        help="ROCKET kernels (MultiRocket gets an eighth: 8 features each)")
    parser.add_argument("--dtw-train-per-class", type=int, default=15,
                        help="training windows per person kept by the DTW attacker")
    parser.add_argument("--subjects", type=int, default=None,
                        help="keep only the first N subjects (quick runs)")
    parser.add_argument("--out", default=str(RESULTS / "attacker_zoo.json"))
    parser.add_argument("--append", action="store_true",
                        help="keep the records already in --out that this run does not "
                             "measure again (parts can run separately)")
    args = parser.parse_args(argv)

    start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", flush=True)

    bunch = load_hapt()
    windows = {}
    for kind in args.kinds.split(","):
        w = make_windows(bunch, 128, 64, magnitude=False if kind == "6ch" else "only")
        if args.subjects is not None:
            keep = np.isin(w.subject, np.unique(w.subject)[: args.subjects])
            for key in ("X", "y", "subject", "recording", "start", "segment"):
                w[key] = np.asarray(w[key])[keep]
        log(f"{kind}: {w.X.shape[0]} windows of shape {w.X.shape[1:]}")
        windows[kind] = w

    # The most telling figures first; records are written after each part, so a run
    # cut short keeps what it measured.
    apps = [("activity", "6ch", app) for app in args.apps.split(",") if app]
    apps = apps if "6ch" in windows else []
    parts = []
    for name in filter(None, args.attackers.split(",")):
        parts += [("identity", kind, name) for kind in windows]
        if name == "rocket_minirocket":  # the app's figure right after the attacker's
            parts, apps = parts + apps, []
    parts += apps
    records = []
    env = environment_record("hapt") | {"aeon": _aeon_version()}
    for task, kind, name in parts:
        attackers = make_attackers([name], args.n_jobs, n_kernels=args.n_kernels,
                                   dtw_train_per_class=args.dtw_train_per_class)
        run = identity if task == "identity" else activity
        records += run(windows[kind], kind, attackers, log)
        written = write_benchmark_records(_kept(args) + records + [env], args.out)
        log(f"wrote {len(written)} records to {args.out}")


def _kept(args):
    """Records of ``--out`` that this run does not measure (with ``--append``)."""
    path = Path(args.out)
    if not args.append or not path.exists():
        return []
    mine = {(kind, name) for name in args.attackers.split(",") if name
            for kind in args.kinds.split(",")}
    mine |= {("6ch", f"{name}:activity") for name in args.apps.split(",") if name}

    def key(r):
        suffix = ":activity" if r["metric"] == "activity_macro_f1" else ""
        return (r.get("windows"), f"{r['attacker']}{suffix}")

    with open(path) as f:
        return [r for r in json.load(f) if r["metric"] != "environment" and key(r) not in mine]


def _aeon_version():
    from importlib.metadata import version

    return version("aeon")


if __name__ == "__main__":
    main()
