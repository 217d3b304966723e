"""privacy_utility_report gives the same report on one process, on local worker
processes (loky) and on a real Dask cluster (2 worker processes on loopback)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression

from sklearn_privacy.adversaries import make_feature_attacker
from sklearn_privacy.evaluation import privacy_utility_report
from sklearn_privacy.motion import GaussianNoise, SSASmoother

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

# Worker processes import torch and the library: seconds each on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _data(n_subjects=5, n_recordings=2, n_windows=12, n_timestamps=32, seed=0):
    """Channel 0 carries the person (an offset), channel 1 the activity (a sine)."""
    rng = np.random.RandomState(seed)
    n = n_subjects * n_recordings * n_windows
    subject = np.repeat(np.arange(n_subjects), n_recordings * n_windows)
    recording = np.repeat(np.arange(n_subjects * n_recordings), n_windows) % n_recordings
    y = rng.randint(2, size=n)
    t = np.linspace(0, 4 * np.pi, n_timestamps)
    X = 0.5 * rng.normal(size=(n, n_timestamps, 2))
    X[:, :, 0] += 0.3 * subject[:, None]
    X[:, :, 1] += np.where(y[:, None] == 1, 1.0, -1.0) * np.sin(t)
    return X.astype(np.float32), y, subject, np.column_stack([subject, recording])


def _report(n_jobs):
    X, y, subject, groups = _data()
    # Library estimators only (the workers import them), each with its own seed; the
    # noise draws random numbers, so a result that depended on the task order or on
    # the global random state would show (seeded here: its default draws fresh noise).
    protectors = {
        "raw": "raw",
        "ssa": SSASmoother(n_components=1),
        "noise": GaussianNoise(sigma=0.5, noise_random_state=0),
    }
    attackers = {
        "trees": make_feature_attacker(
            ExtraTreesClassifier(n_estimators=20, random_state=0)),
        "lr": make_feature_attacker(LogisticRegression(max_iter=2000)),
    }
    app = make_feature_attacker(ExtraTreesClassifier(n_estimators=20, random_state=1))
    return privacy_utility_report(
        protectors, X, y, subject, groups=groups, app=app, attackers=attackers,
        utility_cv=2, privacy_cv=2, n_jobs=n_jobs, dataset="synthetic",
    )


def _figures(report):
    return report[report["metric"] != "fit_seconds"].reset_index(drop=True)


@pytest.fixture(scope="module")
def sequential():
    return _report(1)


def test_report_with_two_local_processes_equals_the_sequential_one(sequential):
    with joblib.parallel_config(backend="loky"):
        parallel = _report(2)
    pd.testing.assert_frame_equal(_figures(parallel), _figures(sequential))
    # the figures are real: the raw data leak identity, and every protector is there
    worst = sequential[(sequential.attacker == "worst") & (sequential["mode"] == "adaptive")
                       & (sequential.metric == "identity_advantage")]
    assert set(worst.protector) == {"raw", "ssa", "noise"}
    assert worst.set_index(["protector", "level"])["value"]["raw", "window"] > 0.2


def test_report_on_a_dask_cluster_equals_the_sequential_one(sequential):
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1", silence_logs=50,
    )
    client = distributed.Client(cluster, timeout="60s")
    try:
        with joblib.parallel_config(backend="dask"), \
                distributed.get_task_stream(client) as stream:
            remote = _report(-1)
        # The tasks really ran on both workers.
        assert len({task["worker"] for task in stream.data}) == 2
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)
    pd.testing.assert_frame_equal(_figures(remote), _figures(sequential))
