"""``sklearn-privacy protect MODEL INPUT OUTPUT``: a saved protector over a .npy file."""

import numpy as np
import pytest

from sklearn_privacy.cli import main
from sklearn_privacy.motion import Downsampler, SSASmoother
from sklearn_privacy.persistence import save_protector

X = np.random.RandomState(0).randn(23, 50, 3).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    protector = SSASmoother(n_components=2).fit(X)
    model = save_protector(protector, tmp_path / "ssa.skp")
    source = tmp_path / "windows.npy"
    np.save(source, X)
    return protector, model, source, tmp_path / "protected.npy"


@pytest.mark.parametrize("chunk_size", ["4", "23", "1000"])
def test_protect_writes_the_transform(files, chunk_size, capsys):
    protector, model, source, target = files
    assert main(["protect", str(model), str(source), str(target),
                 "--chunk-size", chunk_size]) == 0
    np.testing.assert_allclose(np.load(target), protector.transform(X), rtol=1e-6, atol=1e-6)
    captured = capsys.readouterr()
    assert f"wrote {target}: 23 windows of shape (50, 3) (float32)" in captured.out
    assert "protect" in captured.err  # the progress bar


def test_protect_quiet_and_shape_changing_protector(tmp_path, capsys):
    protector = Downsampler(target_rate=10, restore_length=False).fit(X)
    model = save_protector(protector, tmp_path / "down.skp")
    np.save(tmp_path / "in.npy", X)
    assert main(["protect", str(model), str(tmp_path / "in.npy"), str(tmp_path / "out.npy"),
                 "--quiet"]) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (23, 10, 3)
    np.testing.assert_array_equal(out, protector.transform(X))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_protect_errors(files, tmp_path, capsys):
    protector, model, source, target = files
    assert main(["protect", str(tmp_path / "missing.skp"), str(source), str(target)]) == 2
    assert "No protector file" in capsys.readouterr().err
    assert main(["protect", str(model), str(tmp_path / "missing.npy"), str(target)]) == 2
    assert "No input file" in capsys.readouterr().err
    assert main(["protect", str(model), str(source), str(source)]) == 2
    assert "OUTPUT must differ from INPUT" in capsys.readouterr().err
    assert main(["protect", str(model), str(source), str(target), "--chunk-size", "0"]) == 2
    assert "--chunk-size must be a positive integer" in capsys.readouterr().err
    (tmp_path / "text.npy").write_text("not numpy")
    assert main(["protect", str(model), str(tmp_path / "text.npy"), str(target)]) == 2
    assert "is not a .npy array file" in capsys.readouterr().err
    assert main(["protect", str(source), str(source), str(target)]) == 2  # not a model
    assert "not a protector file" in capsys.readouterr().err
    np.save(tmp_path / "short.npy", X[:, :20])
    assert main(["protect", str(model), str(tmp_path / "short.npy"), str(target)]) == 2
    assert "sklearn-privacy: error:" in capsys.readouterr().err


def test_protect_help_does_not_import_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\nfrom sklearn_privacy.cli import main\n"
        "try:\n    main(['protect', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('torch', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--chunk-size" in result.stdout
    assert result.stdout.rstrip().endswith("HEAVY=")
