"""Searches and protectors on a real Dask cluster (2 worker processes on loopback).

``GridSearchCV`` over a protector parameter runs unchanged under
``joblib.parallel_config(backend="dask")``: routed ``sensitive_features`` and ``groups``
reach the workers and the scores equal those of the default backend. Fitted torch
protectors pickle to the workers, and each worker runs torch on one thread.
"""

import operator
import os

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sklearn_privacy.adversaries import MotionFeatures
from sklearn_privacy.metrics import PrivacyScorer
from sklearn_privacy.motion import MotionAnonymizer, SSASmoother
from sklearn_privacy.utils import dask_transform

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

# Starting two worker processes that import torch takes a while on a busy machine;
# the timeout turns a hung cluster into a failure with its traceback.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RNG = np.random.RandomState(0)
PERSON = np.repeat(np.arange(4), 24)  # 4 people
RECORDING = np.repeat(np.arange(8), 12)  # 2 recordings each
ACTIVITY = np.tile(np.repeat([0, 1], 6), 8)
X = (RNG.randn(96, 32, 3) + 0.5 * PERSON[:, None, None]
     + np.sin(np.linspace(0, 6, 32))[None, :, None] * ACTIVITY[:, None, None]).astype(np.float32)
# Subject-disjoint outer folds: the scored people were never seen by the protector.
FOLDS = [(np.flatnonzero(PERSON < 2), np.flatnonzero(PERSON >= 2)),
         (np.flatnonzero(PERSON >= 2), np.flatnonzero(PERSON < 2))]


@pytest.fixture(scope="module")
def client():
    # The workers must pin torch to one thread even when the parent allows more.
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "2"
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            host="127.0.0.1", silence_logs=50,
        )
    finally:
        if saved is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    client = distributed.Client(cluster, timeout="60s")
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


def _search(n_jobs):
    pipeline = make_pipeline(SSASmoother(), MotionFeatures(), LogisticRegression(max_iter=500))
    return GridSearchCV(
        pipeline,
        {"ssasmoother__n_components": [1, 2, 3]},
        scoring={
            "utility": "accuracy",
            "privacy": PrivacyScorer(attacker=LogisticRegression(max_iter=500), random_state=0),
        },
        refit=False,
        cv=FOLDS,
        n_jobs=n_jobs,
    )


def test_grid_search_on_the_cluster_matches_the_default_backend(client):
    assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
    with sklearn.config_context(enable_metadata_routing=True):
        local = _search(None).fit(X, ACTIVITY, sensitive_features=PERSON, groups=RECORDING)
        with joblib.parallel_config(backend="dask"), distributed.get_task_stream(client) as ts:
            remote = _search(-1).fit(X, ACTIVITY, sensitive_features=PERSON, groups=RECORDING)
    # The 6 (candidate, fold) tasks really ran on the 2 workers.
    assert len({task["worker"] for task in ts.data}) == 2
    for key in ("utility", "privacy"):
        for split in range(len(FOLDS)):
            column = f"split{split}_test_{key}"
            np.testing.assert_array_equal(remote.cv_results_[column], local.cv_results_[column])
    # Routed sensitive_features made privacy differ from chance-level nonsense:
    # identity leaks through (person offsets), so privacy < 1 somewhere.
    assert np.min(local.cv_results_["mean_test_privacy"]) < 1.0


def test_fitted_torch_protector_runs_on_a_worker(client):
    anonymizer = MotionAnonymizer(
        n_filters=2, classifier_filters=2, n_rounds=1, classifier_epochs=1,
        anonymizer_epochs=1, batch_size=32, device="cpu", random_state=0,
    ).fit(X, ACTIVITY, sensitive_features=PERSON)
    future = client.submit(operator.methodcaller("transform", X), anonymizer)
    np.testing.assert_allclose(future.result(timeout=60), anonymizer.transform(X),
                               rtol=1e-5, atol=1e-6)
    # and chunk by chunk on the cluster through a Dask array
    import dask.array as da

    lazy = dask_transform(anonymizer, da.from_array(X, chunks=(40, 32, 3)))
    np.testing.assert_allclose(lazy.compute(), anonymizer.transform(X), rtol=1e-5, atol=1e-6)


def test_each_worker_runs_torch_on_one_thread(client):
    # Dask's nanny sets OMP_NUM_THREADS=1 (distributed.nanny.pre-spawn-environ) before
    # it starts a worker process, and torch reads it at import.
    import torch

    threads = client.run(torch.get_num_threads)
    assert list(threads.values()) == [1, 1]
