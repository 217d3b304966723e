"""The Sphinx site builds without warnings, and its pages cover the command and examples.

The build also fails on numpydoc's "Unknown section" warnings, which Sphinx's ``-W`` does
not see (numpydoc emits them as Python warnings).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="docs extra not installed: pip install -e '.[docs]'")
    pytest.importorskip("numpydoc", reason="docs extra not installed: pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning:numpydoc.docscrape", "-m", "sphinx",
         "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "Unknown section" not in result.stderr, result.stderr[-5000:]
    for page in ("api", "getting_started", "cli", "examples"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    # The examples gallery shows the scripts themselves.
    examples = (tmp_path / "html" / "examples.html").read_text(encoding="utf-8")
    assert "privacy_utility_report" in examples and "GridSearchCV" in examples


def test_examples_page_includes_every_example():
    page = (DOCS / "examples.rst").read_text(encoding="utf-8")
    included = set(re.findall(r"literalinclude:: \.\./examples/(\S+\.py)", page))
    assert included == {path.name for path in (ROOT / "examples").glob("*.py")}


def test_cli_page_documents_every_option():
    from sklearn_privacy.cli import _parser

    page = (DOCS / "cli.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. option:: (--[\w-]+)", page, re.M))
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices
    kinds = commands["evaluate"]._subparsers._group_actions[0].choices
    motion, image = kinds["motion"], kinds["image"]
    protect = commands["protect"]
    options = {option for action in parser._actions + motion._actions + image._actions
               + protect._actions
               for option in action.option_strings
               if option.startswith("--") and option != "--help"}
    assert options == documented


def test_ci_runs_the_readme_test_command_in_a_fresh_environment():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
                if "pytest" in block]
    assert len(commands) == 1, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [line.strip() for line in ci.splitlines()]
    # The same command, verbatim, run inside a virtual environment made for the run.
    assert any(line.startswith(commands[0]) for line in ci_lines), commands[0]
    assert "-m venv" in ci and "/bin/activate" in ci
    assert ci.index("/bin/activate") < ci.index(commands[0])
