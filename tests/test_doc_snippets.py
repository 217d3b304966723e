"""Every code block of the README and of the docs runs as written.

A reader copies the blocks of one page in order, so the blocks of a page run in order in
one namespace, from a scratch folder, with scikit-learn's global configuration restored
afterwards. Python blocks are the README's fenced ```python blocks and the docs'
``.. code-block:: python`` directives and ``>>>`` examples; every other block must name
its language (a bare ``::`` block would escape this test). The pages that load the real
HAPT windows and train models are marked slow; their snippets are sized to take seconds.
"""

import doctest
import re
import textwrap
from pathlib import Path

import pytest
import sklearn

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.rst"))
PAGES = [page for page in PAGES if "generated" not in page.relative_to(ROOT).parts]
# Pages whose snippets load HAPT and train models on it.
SLOW = {
    "README.md",
    "docs/user_guide/attackers.rst",
    "docs/user_guide/datasets.rst",
    "docs/user_guide/evaluation.rst",
    "docs/user_guide/protectors.rst",
    # starts a local Dask cluster of two worker processes
    "docs/user_guide/cluster.rst",
}

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block::\s*(\S*)\s*$")


def _markdown_blocks(text):
    return [(lang, body) for lang, body in _FENCE.findall(text)]


def _indented_block(lines, start, indent):
    """The lines after ``start`` indented deeper than ``indent`` (blank lines included)."""
    body, i = [], start
    while i < len(lines) and (not lines[i].strip() or
                              len(lines[i]) - len(lines[i].lstrip()) > indent):
        body.append(lines[i])
        i += 1
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n", i


def _rst_blocks(text):
    """``(language, code)`` of each code block; ``">>>"`` for doctest paragraphs."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        match = _DIRECTIVE.match(line)
        if match:
            indent = len(match.group(1))
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(":"):
                j += 1  # directive options
            code, i = _indented_block(lines, j, indent)
            blocks.append((match.group(2), code))
            continue
        if line.strip().startswith(">>>"):
            indent = len(line) - len(line.lstrip())
            body = []
            while i < len(lines) and lines[i].strip():
                body.append(lines[i][indent:])
                i += 1
            blocks.append((">>>", "\n".join(body) + "\n"))
            continue
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            blocks.append(("", _indented_block(lines, i + 1, len(line) - len(line.lstrip()))[0]))
        i += 1
    return blocks


def _blocks(page):
    text = page.read_text(encoding="utf-8")
    return _markdown_blocks(text) if page.suffix == ".md" else _rst_blocks(text)


def _page_id(page):
    return page.relative_to(ROOT).as_posix()


def _python_blocks(page):
    return [(lang, code) for lang, code in _blocks(page) if lang in ("python", ">>>")]


def _params(pages=PAGES, *, mark_slow=False):
    for page in pages:
        marks = [pytest.mark.slow] if mark_slow and _page_id(page) in SLOW else []
        yield pytest.param(page, id=_page_id(page), marks=marks)


def test_pages_are_found():
    found = {_page_id(page) for page in PAGES}
    assert {"README.md", "docs/getting_started.rst", "docs/cli.rst"} <= found
    assert sum(len(_python_blocks(page)) for page in PAGES) >= 8


def test_block_extraction():
    rst = textwrap.dedent("""\
        Text::

            bare

        .. code-block:: python
           :caption: x

           a = 1

             b = 2

        >>> c = 3
        >>> c
        3
        """)
    assert _rst_blocks(rst) == [("", "bare\n"), ("python", "a = 1\n\n  b = 2\n"),
                                (">>>", ">>> c = 3\n>>> c\n3\n")]
    assert _markdown_blocks("```python\nx = 1\n```\n```\ny\n```\n") == [
        ("python", "x = 1\n"), ("", "y\n")]


@pytest.mark.parametrize("page", list(_params()))
def test_code_blocks_name_their_language(page):
    unnamed = [code for lang, code in _blocks(page) if not lang]
    assert not unnamed, (f"{_page_id(page)}: give each code block a language "
                         f"(``.. code-block:: python`` or ``bash``); unnamed: {unnamed}")


@pytest.mark.parametrize(
    "page", list(_params([p for p in PAGES if _python_blocks(p)], mark_slow=True)))
def test_python_blocks_run_as_written(page, tmp_path, monkeypatch):
    blocks = _python_blocks(page)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_snippet__"}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        with sklearn.config_context():
            for number, (lang, code) in enumerate(blocks, 1):
                where = f"{_page_id(page)}, Python block {number}"
                if lang == ">>>":
                    test = parser.get_doctest(code, namespace, where, str(page), 0)
                    report = []
                    result = runner.run(test, out=report.append, clear_globs=False)
                    assert result.failed == 0, "".join(report)
                else:
                    exec(compile(code, where, "exec"), namespace)
    finally:
        plt.close("all")
