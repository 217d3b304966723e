"""Speed-up of a privacy-utility search on a Dask cluster, measured and projected.

The same ``GridSearchCV`` runs on a :class:`~distributed.LocalCluster` of 1 and then 2
worker processes (one task at a time each) in one run: an
:class:`~sklearn_privacy.motion.SSASmoother` (4 values of ``n_components`` by default)
before an app (logistic regression on motion features), scored on 2 subject-disjoint
folds of HAPT by the activity macro-F1 (utility) and by
:class:`~sklearn_privacy.metrics.PrivacyScorer` (privacy: an adaptive
logistic-regression attacker on motion features, retrained on protected windows, on
other recordings of the same people). Each search is repeated; the figure is the
median wall time, and the ratio of the medians is the measured speed-up.

From the task stream of the first 1-worker run (the compute time of each task) and
two small probes on the 2-worker cluster (the round trip of an empty
task; the time to broadcast the windows to every worker), the script projects the wall
time on N workers: the tasks packed onto N workers longest first (their longest task
is the critical path, since the (candidate, fold) tasks are independent), plus the
scheduler's overhead per task, plus moving the data, either with every task receiving
the windows (no scattering) or with the windows broadcast to the workers once
(scattering, what joblib's Dask backend does for large arguments).

Writes ``benchmarks/results/dask_speedup.json`` and ``dask_speedup.md``.

Run ``python benchmarks/dask_speedup.py --help``.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "dask_speedup.json"


def _search(n_components, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn_privacy.adversaries import MotionFeatures, make_feature_attacker
    from sklearn_privacy.metrics import PrivacyScorer
    from sklearn_privacy.motion import SSASmoother

    # Models without joblib calls of their own: under the Dask backend every joblib
    # call (a forest's trees, whatever its n_jobs) becomes cluster tasks, and one
    # (candidate, fold) task is the grain measured here.
    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    app = make_pipeline(SSASmoother(), MotionFeatures(), model())
    return GridSearchCV(
        app, {"ssasmoother__n_components": list(n_components)},
        scoring={"utility": "f1_macro",
                 "privacy": PrivacyScorer(attacker=make_feature_attacker(model()),
                                          random_state=seed)},
        refit=False, n_jobs=-1,
    )


def _lpt(durations, n_workers):
    """Makespan of the tasks packed onto ``n_workers``, longest first."""
    loads = [0.0] * n_workers
    for d in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def _compute_seconds(task):
    return sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")


def _run(workers, task, folds, args):
    import joblib
    import sklearn
    from distributed import Client, LocalCluster, get_task_stream

    # joblib runs the tasks in this process when the cluster has one core in all, so
    # each worker gets 2 threads but 1 "slot", and every task takes the slot: one task
    # at a time per worker process, on the cluster for 1 worker too.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=2, processes=True,
                           resources={"slot": 1}, dashboard_address=None,
                           host="127.0.0.1", silence_logs=50)
    client = Client(cluster, timeout="120s")
    client.run(__import__, "sklearn_privacy.motion")  # imports before the clock starts
    walls, streams, results = [], [], []
    try:
        for repeat in range(args.repeats):
            search = _search(args.n_components, args.seed)
            search.cv = folds
            with sklearn.config_context(enable_metadata_routing=True), \
                    joblib.parallel_config(backend="dask", client=client,
                                           resources={"slot": 1}), \
                    get_task_stream(client) as stream:
                start = time.perf_counter()
                search.fit(task.X, task.y, sensitive_features=task.sensitive,
                           groups=task.groups[:, :2])
                walls.append(time.perf_counter() - start)
            streams.append(stream.data)
            results.append(search.cv_results_)
            print(f"{workers} worker(s), repeat {repeat}: {walls[-1]:.1f} s", flush=True)
        probes = _probes(client, task.X) if workers > 1 else None
    finally:
        client.close(timeout=60)
        cluster.close(timeout=60)
    return walls, streams, results, probes


def _probes(client, X, n_empty=200):
    """Round trip of an empty task; broadcast time of the windows to every worker."""
    futures = client.map(lambda i: i, range(n_empty), pure=False)
    start = time.perf_counter()
    client.gather(client.map(lambda i: i, range(n_empty), pure=False))
    overhead = (time.perf_counter() - start) / n_empty
    del futures
    start = time.perf_counter()
    scattered = client.scatter(X, broadcast=True)
    scattered.result()
    broadcast = time.perf_counter() - start
    n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
    return {"task_overhead_s": overhead, "broadcast_s": broadcast,
            "bytes_per_second": X.nbytes * n_workers / broadcast}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-subjects", type=int, default=None,
                        help="first N people of HAPT (default: all 30)")
    parser.add_argument("--step", type=int, default=64, help="window step (default: 64)")
    parser.add_argument("--n-components", default="1,2,3,4",
                        help="grid of SSASmoother n_components (default: 1,2,3,4)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per cluster size")
    parser.add_argument("--project", default="1,2,4,8,16,32",
                        help="worker counts of the projection")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.n_components = [int(v) for v in args.n_components.split(",")]

    from sklearn_privacy.evaluation import (
        environment_record,
        load_motion_task,
        make_record,
        write_benchmark_records,
    )
    from sklearn_privacy.model_selection import SubjectDisjointSplit

    task = load_motion_task("hapt", step=args.step, max_subjects=args.max_subjects)
    folds = list(SubjectDisjointSplit(n_splits=2).split(task.X, task.y, task.groups))
    n_people = len(np.unique(task.groups[:, 0]))
    print(f"HAPT: {len(task.X)} windows, {n_people} people; "
          f"{len(args.n_components)} candidates x {len(folds)} folds", flush=True)

    runs = {workers: _run(workers, task, folds, args) for workers in (1, 2)}
    for key in runs[1][2][0]:
        if key.startswith("split") and key.endswith(("_utility", "_privacy")):
            for results in runs[1][2] + runs[2][2]:
                # the same search whatever the cluster: the figures must agree
                np.testing.assert_array_equal(results[key], runs[1][2][0][key])

    dataset = "hapt"
    name = f"SSASmoother grid {args.n_components} x 2 folds"
    records, medians = [], {}
    for workers, (walls, _, _, _) in runs.items():
        medians[workers] = statistics.median(walls)
        records.append(make_record(dataset, name, "search_wall_seconds", medians[workers],
                                   std=float(np.std(walls)), n_folds=len(walls),
                                   workers=workers, windows=len(task.X)))
    speedup = medians[1] / medians[2]
    records.append(make_record(dataset, name, "speedup_2_workers", speedup,
                               n_folds=args.repeats, workers=2, windows=len(task.X)))

    # -- projection from the 1-worker task streams -------------------------------------
    streams = runs[1][1]
    durations = [_compute_seconds(t) for t in streams[0]]
    if not durations:
        raise RuntimeError("the 1-worker search left no task stream: it did not run on "
                           "the cluster.")
    probes = runs[2][3]
    n_tasks = len(durations)
    data_bytes = task.X.nbytes
    per_task_transfer = data_bytes / probes["bytes_per_second"]
    projection = []
    for n in [int(v) for v in args.project.split(",")]:
        base = _lpt(durations, n) + n_tasks * probes["task_overhead_s"]
        unscattered = base + n_tasks * per_task_transfer / min(n, n_tasks)
        scattered = base + n * per_task_transfer
        projection.append((n, base, unscattered, scattered))
        records.append(make_record(dataset, name, "projected_wall_seconds", scattered,
                                   workers=n, windows=len(task.X)))
    env = environment_record(dataset)
    written = write_benchmark_records(records + [env], args.output)

    md = args.output.with_suffix(".md")
    lines = [
        "", "## Measured", "",
        f"HAPT, {len(task.X)} windows of {task.X.shape[1]} x {task.X.shape[2]} "
        f"({data_bytes / 1e6:.1f} MB), {n_people} people; GridSearchCV of "
        f"{len(args.n_components)} SSASmoother candidates x 2 subject-disjoint folds "
        "(utility: macro-F1 of a logistic regression on motion features; privacy: "
        "PrivacyScorer, adaptive logistic-regression attacker, recording-disjoint inner "
        "split); LocalCluster, "
        f"processes, one task at a time each; median of {args.repeats} repeats.", "",
        "| workers | median wall s | all repeats s |", "|---|---|---|",
    ]
    for workers, (walls, _, _, _) in runs.items():
        lines.append(f"| {workers} | {medians[workers]:.2f} | "
                     + ", ".join(f"{w:.2f}" for w in walls) + " |")
    lines += [
        "", f"Speed-up with 2 workers: **{speedup:.2f}x** (ideal 2x). Both cluster sizes "
        "gave identical cv_results_ scores.", "",
        "## Projection for N workers", "",
        f"From the 1-worker task stream: {n_tasks} tasks, compute {sum(durations):.2f} s in "
        f"all, longest (critical path) {max(durations):.2f} s; scheduler round trip "
        f"{probes['task_overhead_s'] * 1e3:.2f} ms a task; data {data_bytes / 1e6:.1f} MB "
        f"at {probes['bytes_per_second'] / 1e6:.0f} MB/s (broadcast probe), "
        f"{per_task_transfer:.3f} s a copy.", "",
        "wall(N) = tasks packed on N workers longest first + tasks x round trip + data: "
        "either every task receives the windows (copies spread over the N workers) or "
        "the windows are scattered to each worker once.", "",
        "| workers | compute + overhead s | without scattering s | scattered once s |",
        "|---|---|---|---|",
    ]
    for n, base, unscattered, scattered in projection:
        lines.append(f"| {n} | {base:.2f} | {unscattered:.2f} | {scattered:.2f} |")
    lines += ["", f"With {n_tasks} independent tasks, no more than {n_tasks} workers can "
              f"help; past that the longest task ({max(durations):.2f} s) bounds the wall "
              "time.", ""]
    with open(md, "a") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.output} and {md} ({len(written)} records); speed-up {speedup:.2f}x")


if __name__ == "__main__":
    main()
