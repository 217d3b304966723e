"""Motion privacy benchmark: protectors on HAPT (identity) and MobiFall (attributes).

Writes ``benchmarks/results/motion_privacy.json`` (records in the format of DESIGN.md)
and ``motion_privacy.md``. Every privacy figure names its attacker, its mode (adaptive:
retrained on protected data; static: trained on raw data) and its level (window or
whole recording); privacy is measured on other recordings of the same people, utility on
people the app never saw, and the protectors never see the test recordings.

Parts (``--parts``, comma-separated):

- ``hapt``: the privacy-utility report of every protector (``--protectors``) against
  the attackers (``--attackers``: ROCKET, motion features with trees, the ResNet CNN; the
  worst case over them is the headline) and the apps (``--apps``), plus DTW
  re-identification rank, transform throughput and peak memory.
- ``speed``: batched SSA against a per-window SVD loop, in the same run.
- ``mobifall``: gender (balanced accuracy) and height/weight (MAE of a regressor), raw
  and protected, on other trials of the same people and on unseen people.
- ``rae``: the replacement autoencoder's sensitive-activity recall before and after.

Run ``python benchmarks/motion_privacy.py --help``. Results are appended per part, so
parts can run separately (``--append``).
"""

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np

from sklearn_privacy.evaluation import (
    PROTECTORS,
    evaluate_motion,
    load_motion_task,
    make_apps,
    make_attackers,
    make_protectors,
    make_record,
    summary_table,
    write_benchmark_records,
)
from sklearn_privacy.model_selection import RecordingDisjointSplit

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# -- HAPT: the privacy-utility report and per-protector costs ---------------------------
def _transform_peak_kb(protector, X, queue):
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    protector.transform(X)
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)


def _peak_transform_memory(protector, X):
    """Peak resident memory added while transforming ``X`` (MB), in a fresh process.

    Spawned, not forked: a forked child of a process whose torch (OpenMP) threads have
    run can deadlock, as one of our runs did.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_transform_peak_kb, args=(protector, X, queue))
    process.start()
    grown_kb = queue.get(timeout=600)
    process.join()
    return grown_kb / 1024.0


def _costs(name, protector, task, *, reid_people, seed):
    """Throughput, peak memory and DTW re-identification rank of a fitted protector."""
    from sklearn_privacy.metrics import mean_reidentification_rank

    records = []
    X = task.X
    if protector == "raw":
        protected = X
    else:
        start = time.perf_counter()
        protected = protector.transform(X)
        rate = len(X) / (time.perf_counter() - start)
        records.append(make_record(task.dataset, name, "transform_per_second", rate))
        records.append(make_record(task.dataset, name, "peak_memory_mb",
                               _peak_transform_memory(protector, X[:10000])))
    # DTW re-identification: queries from each person's second recording against
    # references from their first one, on a subset of people (DTW is quadratic).
    rng = np.random.default_rng(seed)
    subject, recording = task.groups[:, 0], task.groups[:, 1]
    people = rng.choice(np.unique(subject), size=min(reid_people, len(np.unique(subject))),
                        replace=False)
    first = {p: recording[subject == p].min() for p in people}
    in_people = np.isin(subject, people)
    is_ref = in_people & np.array([first.get(s, -1) == r for s, r in zip(subject, recording)])
    is_query = in_people & ~is_ref
    ref = np.flatnonzero(is_ref)[:: max(1, is_ref.sum() // 600)]
    query = np.flatnonzero(is_query)[:: max(1, is_query.sum() // 300)]
    rank = mean_reidentification_rank(protected[query], subject[query], protected[ref],
                                      subject[ref], sakoe_chiba_radius=8)
    records.append(make_record(task.dataset, name, "reid_rank", rank, attacker="dtw_1nn",
                           mode="adaptive", level="window", chance=(len(people) + 1) / 2,
                           n_people=int(len(people))))
    return records


def run_hapt(args):
    task = load_motion_task("hapt", step=args.step, max_subjects=args.max_subjects)
    print(f"hapt: {len(task.X)} windows, {len(np.unique(task.groups[:, 0]))} people", flush=True)
    protectors, profiles = make_protectors(args.protectors, epochs=args.epochs,
                                           random_state=args.seed)
    budget = dict(epochs=args.epochs, n_filters=args.filters, n_kernels=args.kernels,
                  random_state=args.seed)
    attackers = make_attackers(args.attackers, **budget)
    apps = make_apps(args.apps, **budget)
    records = []
    if not args.costs_only:
        report = evaluate_motion(task, protectors, attackers, apps=apps, profiles=profiles,
                                 utility_splits=args.utility_splits, random_state=args.seed,
                                 verbose=1)
        records = report.to_dict("records")
        print(summary_table(report).round(3).to_string(), flush=True)
    # Costs measured on a protector fitted on the first recording of every person
    # (the recording-disjoint training side), so the transformed data was never seen.
    train, _ = next(RecordingDisjointSplit(n_splits=2).split(task.X, task.sensitive, task.groups))
    for name, protector in protectors.items():
        if protector != "raw":
            protector.fit(task.X[train], task.y[train], sensitive_features=task.sensitive[train])
        for rec in _costs(name, protector, task, reid_people=args.reid_people, seed=args.seed):
            rec["profile"] = profiles.get(name)
            if args.costs_only:  # kept apart from the report rows of the same protector
                rec["part"] = "hapt-costs"
            records.append(rec)
        print(f"  costs of {name} done", flush=True)
    return records


# -- SSA speed: batched against a per-window loop ----------------------------------------
def run_speed(args):
    from sklearn_privacy.motion import SSASmoother
    from sklearn_privacy.motion._baselines import _ssa_reference

    X = load_motion_task("hapt", step=args.step).X[:2000]
    records = []
    for n_components in (1, 2):
        batched_times, loop_times = [], []
        # Warm-up outside the timing: the first transform compiles SSASmoother's numba
        # kernel (or loads it from its cache).
        SSASmoother(n_components=n_components).fit(X).transform(X[:1])
        for _ in range(args.repeats):
            smoother = SSASmoother(n_components=n_components).fit(X)
            start = time.perf_counter()
            out = smoother.transform(X)
            batched_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            ref = np.stack([np.stack([_ssa_reference(x[:, c], 10, n_components)
                                      for c in range(X.shape[2])], axis=1) for x in X])
            loop_times.append(time.perf_counter() - start)
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
        name = f"SSASmoother({n_components})"
        batched, loop = np.median(batched_times), np.median(loop_times)
        records += [
            make_record("hapt", name, "transform_per_second", len(X) / batched, n_folds=args.repeats),
            make_record("hapt", f"{name} per-window loop", "transform_per_second", len(X) / loop,
                    n_folds=args.repeats),
            make_record("hapt", name, "speedup_vs_sequential", loop / batched, n_folds=args.repeats),
        ]
        print(f"{name}: batched {len(X) / batched:.0f} windows/s, loop {len(X) / loop:.0f} "
              f"windows/s, speed-up x{loop / batched:.0f}", flush=True)
    return records


# -- MobiFall: attributes ------------------------------------------------------------------
def run_mobifall(args):
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import balanced_accuracy_score, mean_absolute_error
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.pipeline import make_pipeline

    from sklearn_privacy.adversaries import MotionFeatures
    from sklearn_privacy.datasets import load_mobifall, make_windows

    bunch = load_mobifall(SHARED / "mobifall")
    windows = make_windows(bunch, length=128, step=args.step, magnitude="only")
    subject = windows.subject
    attrs = windows.attributes.loc[subject]
    gender = attrs["gender"].to_numpy().astype(int)
    height, weight = attrs["height"].to_numpy(float), attrs["weight"].to_numpy(float)
    recording = windows.recording
    names = [n for n in args.protectors if n != "anonymizer-faithful"]
    protectors, profiles = make_protectors(names, epochs=args.epochs, random_state=args.seed)
    attackers = make_attackers(args.attackers, epochs=args.epochs, n_filters=args.filters,
                               n_kernels=args.kernels, random_state=args.seed)
    regressor = make_pipeline(MotionFeatures(), HistGradientBoostingRegressor(
        max_iter=200, early_stopping=False, random_state=args.seed))
    # Protocol 1, the published one: other trials of the same people (split by trial
    # parity within each person and activity). Protocol 2: leave one person out.
    trial_of = dict(zip(np.asarray(bunch.recording).tolist(), np.asarray(bunch.trial).tolist()))
    trial_even = np.array([trial_of[r] % 2 == 0 for r in recording.tolist()])
    protocols = {
        "same_people_other_trials": [(np.flatnonzero(~trial_even), np.flatnonzero(trial_even)),
                                     (np.flatnonzero(trial_even), np.flatnonzero(~trial_even))],
        "unseen_people": list(LeaveOneGroupOut().split(windows.X, groups=subject)),
    }
    records = []
    for protocol, folds in protocols.items():
        if protocol == "unseen_people":
            folds = folds[:: max(1, len(folds) // args.loso_folds)]
        for name, protector in protectors.items():
            scores = {}
            for train, test in folds:
                X_tr, X_te = windows.X[train], windows.X[test]
                if protector != "raw":
                    fitted = clone(protector).fit(X_tr, windows.y[train],
                                                  sensitive_features=gender[train])
                    P_tr, P_te = fitted.transform(X_tr), fitted.transform(X_te)
                else:
                    P_tr, P_te = X_tr, X_te
                for att_name, attacker in attackers.items():
                    for mode, (A_tr, A_te) in {"adaptive": (P_tr, P_te),
                                               "static": (X_tr, P_te)}.items():
                        if protector == "raw" and mode == "static":
                            continue
                        model = clone(attacker).fit(A_tr, gender[train])
                        scores.setdefault(("gender_balanced_accuracy", att_name, mode), []).append(
                            balanced_accuracy_score(gender[test], model.predict(A_te)))
                for target, values, metric in ((height, "height", "height_mae_cm"),
                                               (weight, "weight", "weight_mae_kg")):
                    model = clone(regressor).fit(P_tr, target[train])
                    scores.setdefault((metric, "features_hgb", "adaptive"), []).append(
                        mean_absolute_error(target[test], model.predict(P_te)))
            for (metric, att_name, mode), values in scores.items():
                chance = 0.5 if metric == "gender_balanced_accuracy" else None
                records.append(make_record("mobifall", name, metric, np.mean(values),
                                       std=np.std(values), n_folds=len(values), attacker=att_name,
                                       mode=mode, level="window", chance=chance,
                                       protocol=protocol, profile=profiles.get(name)))
            print(f"  mobifall {protocol} {name}: " + ", ".join(
                f"{m}/{a}/{mo}={np.mean(v):.3f}" for (m, a, mo), v in scores.items()), flush=True)
    # How much signal there is to hide: predicting each window's height by the training
    # mean (no information) is the floor the regressor should beat.
    for metric, target in (("height_mae_cm", height), ("weight_mae_kg", weight)):
        records.append(make_record("mobifall", "constant_mean", metric,
                               np.mean(np.abs(target - target.mean())), protocol="reference"))
    return records


# -- RAE: sensitive-activity recall before/after ------------------------------------------
def run_rae(args):
    from sklearn.metrics import confusion_matrix

    from sklearn_privacy.adversaries import TimeSeriesCNNClassifier
    from sklearn_privacy.model_selection import SubjectDisjointSplit
    from sklearn_privacy.motion import ReplacementAutoEncoder

    task = load_motion_task("hapt", step=args.step, max_subjects=args.max_subjects)
    names = task.activity_names
    # Hide walking downstairs (3) and upstairs (2) behind walking (1); keep the rest.
    sensitive, neutral = [2, 3], [1]
    train, test = next(SubjectDisjointSplit(n_splits=3).split(task.X, task.y, task.groups))
    app = TimeSeriesCNNClassifier(n_filters=args.filters, max_epochs=args.epochs, patience=3,
                                  random_state=args.seed).fit(task.X[train], task.y[train],
                                                              groups=task.groups[train])
    labels = np.unique(task.y)
    before = confusion_matrix(task.y[test], app.predict(task.X[test]), labels=labels,
                              normalize="true")
    records = []
    # The published RAE (random neutral targets, every window through the autoencoder)
    # and ours (nearest neutral targets; only the windows its gate flags are replaced).
    variants = {"ReplacementAutoEncoder": {},
                "ReplacementAutoEncoder(nearest, gate)": {"pairing": "nearest", "gate": True}}
    for protector, options in variants.items():
        rae = ReplacementAutoEncoder(sensitive=sensitive, neutral=neutral, **options,
                                     random_state=args.seed).fit(task.X[train], task.y[train])
        after = confusion_matrix(task.y[test], app.predict(rae.transform(task.X[test])),
                                 labels=labels, normalize="true")
        for i, activity in enumerate(labels):
            name = names.get(int(activity), str(activity)) if names else str(activity)
            role = ("sensitive" if activity in sensitive
                    else "neutral" if activity in neutral else "kept")
            for stage, matrix in (("before", before), ("after", after)):
                records.append(make_record("hapt", protector, "activity_recall",
                                       matrix[i, i], attacker="cnn_raw_app", mode="static",
                                       level="window", activity=name, role=role, stage=stage))
            if role == "sensitive":
                for j, other in enumerate(labels):
                    if after[i, j] > 0.01 and j != i:
                        records.append(make_record(
                            "hapt", protector, "read_as_rate", after[i, j],
                            attacker="cnn_raw_app", mode="static", level="window",
                            activity=name,
                            read_as=names.get(int(other), str(other)) if names else str(other)))
            print(f"  {protector} {name} ({role}): recall {before[i, i]:.3f} -> "
                  f"{after[i, i]:.3f}", flush=True)
    return records


PARTS = {"hapt": run_hapt, "speed": run_speed, "mobifall": run_mobifall, "rae": run_rae}

# Headline columns of the HAPT table: (label, metric, attacker, mode, level, format).
# "best" is the strongest app (results written before apps were named have None there),
# "worst" the worst case over the attackers.
_HEADLINE = [
    ("activity F1, app retrained", "activity_macro_f1", "best", None, None, "{:.3f}"),
    ("activity F1, raw app", "activity_macro_f1_raw_app", "best", None, None, "{:.3f}"),
    ("id worst adaptive window", "identity_accuracy", "worst", "adaptive", "window",
     "{:.1%}"),
    ("id worst adaptive recording", "identity_accuracy", "worst", "adaptive", "recording",
     "{:.1%}"),
    ("id worst static window", "identity_accuracy", "worst", "static", "window", "{:.1%}"),
    ("id worst adaptive window AUC", "identity_roc_auc_ovr", "worst", "adaptive", "window",
     "{:.3f}"),
    ("id worst adaptive window TPR@1%FPR", "identity_tpr_at_1pct_fpr", "worst", "adaptive",
     "window", "{:.1%}"),
    ("id ROCKET adaptive window", "identity_accuracy", "rocket", "adaptive", "window",
     "{:.1%}"),
    ("id ROCKET adaptive recording", "identity_accuracy", "rocket", "adaptive", "recording",
     "{:.1%}"),
    ("id features adaptive window", "identity_accuracy", "features_et", "adaptive", "window",
     "{:.1%}"),
    ("id features adaptive recording", "identity_accuracy", "features_et", "adaptive",
     "recording", "{:.1%}"),
    ("DTW rank", "reid_rank", "dtw_1nn", "adaptive", "window", "{:.1f}"),
    ("MSE", "mse", None, None, None, "{:.4f}"),
    ("fit s", "fit_seconds", None, None, None, "{:.0f}"),
    ("windows/s", "transform_per_second", None, None, None, "{:,.0f}"),
    ("peak MB", "peak_memory_mb", None, None, None, "{:.0f}"),
]


def headline_markdown(records):
    """The HAPT privacy-utility table (one row per protector) as Markdown lines."""
    rows = [r for r in records if r.get("part") in ("hapt", "hapt-costs")]
    if not rows:
        return []
    chance = {(r["attacker"], r["level"]): r["chance"] for r in rows
              if r["metric"] == "identity_accuracy" and r.get("chance") is not None
              and r["level"] in ("window", "recording")}
    lines = ["## HAPT: identity vs activity (30 people)", "",
             "| protector | " + " | ".join(label for label, *_ in _HEADLINE) + " |",
             "|---|" + "---|" * len(_HEADLINE)]
    for protector in dict.fromkeys(r["protector"] for r in rows):
        cells = []
        for _, metric, attacker, mode, level, fmt in _HEADLINE:
            match = [r for r in rows if r["protector"] == protector and r["metric"] == metric
                     and (r.get("attacker") == attacker
                          or (attacker == "best" and r.get("attacker") is None))
                     and r.get("mode") == mode
                     and r.get("level") == level and r.get("value") is not None]
            cells.append(fmt.format(match[0]["value"]) if match else "-")
        lines.append(f"| {protector} | " + " | ".join(cells) + " |")
    lines += ["", "Chance (majority person in the test recordings): " + ", ".join(
        f"{attacker} {level} {value:.1%}" for (attacker, level), value in sorted(chance.items())
    ) + ". Identity: other recordings of the same people (recording-disjoint, 2 folds; "
        "adaptive = attacker retrained on protected data, static = trained on raw data; "
        "recording = the windows of a recording pooled by majority vote, mean probability "
        "or summed log-probability, whichever works best for the attacker; worst = the "
        "attacker with the highest mean advantage, the headline). Activity: people the app "
        "never saw (subject-disjoint folds); best = the strongest app. DTW rank: mean rank of the "
        "true person among the candidates (1 = re-identified; chance = (n + 1) / 2).", ""]
    return lines


def write_results(records, output):
    """Write the records (JSON and generic Markdown), then put the headline table first."""
    output = Path(output)
    written = write_benchmark_records(records, output, output.with_suffix(".md"))
    md = output.with_suffix(".md")
    generic = md.read_text().splitlines()
    headline = headline_markdown(written)
    if headline:
        md.write_text("\n".join(generic[:2] + headline + generic[2:]) + "\n")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--parts", default="hapt,speed,mobifall,rae")
    parser.add_argument("--protectors", default=",".join(PROTECTORS))
    parser.add_argument("--attackers", default="rocket,features,cnn")
    parser.add_argument("--apps", default="rocket")
    parser.add_argument("--kernels", type=int, default=4000,
                        help="random kernels of the ROCKET attacker and app")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--utility-splits", type=int, default=3)
    parser.add_argument("--step", type=int, default=64)
    parser.add_argument("--max-subjects", type=int, default=None)
    parser.add_argument("--reid-people", type=int, default=10)
    parser.add_argument("--costs-only", action="store_true",
                        help="hapt part: only the costs (throughput, memory, DTW rank)")
    parser.add_argument("--loso-folds", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--append", action="store_true",
                        help="add to the existing results instead of replacing them")
    parser.add_argument("--output", default=str(RESULTS / "motion_privacy.json"))
    parser.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                        help="merge the records of earlier runs (later files win for the "
                             "same part and protector) into --output and rewrite its "
                             "Markdown, running nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        merged = []
        for path in args.from_json:
            new = [r for r in json.loads(Path(path).read_text()) if r.get("metric") != "environment"]
            replaced = {(r.get("part"), r["protector"]) for r in new}
            merged = [r for r in merged if (r.get("part"), r["protector"]) not in replaced] + new
        env = next(r for r in json.loads(Path(args.from_json[-1]).read_text())
                   if r.get("metric") == "environment")
        write_results(merged + [env], args.output)
        return 0
    args.protectors = [p for p in args.protectors.split(",") if p]
    args.attackers = [a for a in args.attackers.split(",") if a]
    args.apps = [a for a in args.apps.split(",") if a]
    output = Path(args.output)
    records = []
    if args.append and output.exists():
        records = [r for r in json.loads(output.read_text()) if r.get("metric") != "environment"]
    for part in [p for p in args.parts.split(",") if p]:
        start = time.perf_counter()
        print(f"== {part}", flush=True)
        new = PARTS[part](args)
        for rec in new:
            rec.setdefault("part", part)
        # A rerun replaces the same part's records of the protectors it measured.
        rerun = {r["protector"] for r in new}
        records = [r for r in records
                   if not (r.get("part") == part and r["protector"] in rerun)] + new
        print(f"== {part} done in {time.perf_counter() - start:.0f} s", flush=True)
        write_results(records, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
