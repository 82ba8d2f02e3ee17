"""The documentation builds without warnings and every code example in it runs.

* ``docs/`` is built with ``sphinx -W --keep-going`` into a temporary
  directory (never into the repository).
* Every fenced code block of every Markdown page is taken, in page order:
  ``python`` blocks run in one namespace per page, in a temporary working
  directory; ``console`` blocks hold ``$ command`` lines: ``treeinf ...`` runs
  through the command line's entry point (or, after a ``% doc-test:
  parse-only`` comment, is only parsed, for commands that take minutes or need
  a cluster), ``pip install`` must name existing extras, ``python
  benchmarks/...`` must name an existing script. Any other language or
  command fails, so no example is skipped silently.
* The docstring examples of every public module run as doctests.
"""
import ast
import doctest
import importlib
import inspect
import io
import re
import runpy
import shlex
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DATA_DIR = ROOT.parent / "shared" / "datasets"


def _pages(suffix):
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob(f"*{suffix}")
                  if "_build" not in p.relative_to(DOCS).parts)


PAGES = _pages(".md")           # MyST pages: their code blocks are run
RST_PAGES = _pages(".rst")      # reST pages (the API reference): no code blocks allowed

#: modules whose docstring examples are run
PUBLIC_MODULES = [
    "treeinf", "treeinf.exceptions", "treeinf._trees", "treeinf._trees._flat",
    "treeinf.explainers._base", "treeinf.explainers.boostin", "treeinf.explainers.leaf",
    "treeinf.explainers.trex", "treeinf.explainers.baselines", "treeinf.explainers.retrain",
    "treeinf.explainers.sets",
    "treeinf.datasets", "treeinf.eval", "treeinf.eval._aggregate", "treeinf.eval._protocol",
    "treeinf.eval._report", "treeinf.eval._run", "treeinf.eval._settings",
    "treeinf.eval._store", "treeinf.eval._cost", "treeinf.plot", "treeinf._persist",
    "treeinf.cli", "treeinf._bench_cli", "treeinf._explain_cli", "treeinf.explainers._io",
]

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_MARKER = re.compile(r"^%\s*doc-test:\s*(?P<mode>[\w-]+)\s*$")
_LANGUAGES = ("python", "console", "text")
_MODES = ("parse-only",)


def code_blocks(text):
    """Fenced blocks of a MyST page as (language, code, line, mode).

    ``language`` is the info string (``{toctree}`` for directives), ``line``
    the 1-based line of the opening fence and ``mode`` the ``% doc-test:``
    marker on the line just above the fence, or None.
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group("fence"), m.group("info"), i
        marker = _MARKER.match(lines[i - 1].strip()) if i > 0 else None
        body = []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if close.startswith(fence[0] * len(fence)) and set(close) == {fence[0]}:
                break
            body.append(lines[i])
            i += 1
        else:
            raise AssertionError(f"unclosed code fence opened on line {start + 1}")
        blocks.append((info, "\n".join(body) + "\n", start + 1,
                       marker.group("mode") if marker else None))
        i += 1
    return blocks


def console_commands(code):
    """The ``$ `` command lines of a console block (continuations joined)."""
    commands, current = [], None
    for line in code.splitlines():
        if current is not None:
            current += " " + line.strip()
        elif line.startswith("$ "):
            current = line[2:].strip()
        else:
            continue   # program output
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        else:
            commands.append(current)
            current = None
    assert current is None, f"unfinished command continuation: {current!r}"
    return commands


def setup_extras():
    """Extras declared in setup.py's ``extras_require``."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return {k.value for k in node.value.keys}
    raise AssertionError("setup.py has no extras_require")


def run_console(argv, mode, where):
    """Run (or check) one shell command shown in the docs."""
    from treeinf.cli import build_parser, main
    if argv[0] == "treeinf":
        if mode == "parse-only":
            try:
                build_parser().parse_args(argv[1:])
            except SystemExit as exc:
                raise AssertionError(f"{where}: `{shlex.join(argv)}` does not parse") from exc
            return
        out = io.StringIO()
        with redirect_stdout(out):
            rc = main(argv[1:])
        assert rc == 0, f"{where}: `{shlex.join(argv)}` exited with {rc}:\n{out.getvalue()}"
        return
    if argv[:2] == ["pip", "install"]:
        extras = setup_extras()
        for arg in argv[2:]:
            m = re.search(r"\[([^\]]*)\]", arg)
            if m:
                unknown = {e.strip() for e in m.group(1).split(",")} - extras
                assert not unknown, f"{where}: unknown extras {unknown} in `{shlex.join(argv)}`"
        return
    if argv[0] == "python" and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        assert (ROOT / argv[1]).is_file(), f"{where}: no script {argv[1]}"
        return
    if argv[:3] == ["python", "-m", "sphinx"]:
        return   # the docs build is test_docs_build_without_warnings
    raise AssertionError(f"{where}: the docs show `{shlex.join(argv)}`, which this test "
                         "does not know how to check; teach it or change the example.")


@pytest.fixture
def doc_env(tmp_path, monkeypatch):
    """A temporary working directory with the benchmark data sets and no display."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TREEINF_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield tmp_path
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in p.parts)


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    before = _tree(DOCS)
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stderr}\n{proc.stdout}"
    for page in PAGES + RST_PAGES:
        assert (out / page.rsplit(".", 1)[0]).with_suffix(".html").is_file(), page
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("treeinf.BoostIn", "treeinf.LeafInfluence", "treeinf.DShap",
                 "treeinf.parse_model", "treeinf.load", "treeinf.exceptions.TreeInfError",
                 "treeinf.datasets.load", "treeinf.eval.plan", "treeinf.plot.influence_bars"):
        assert f'id="{name}"' in api, f"the API reference does not document {name}"
    assert _tree(DOCS) == before, "the docs build wrote into docs/"


def test_every_page_is_checked():
    assert "index.md" in PAGES and "fixed_structure.md" in PAGES
    n_python = 0
    for page in PAGES:
        for lang, _, line, mode in code_blocks((DOCS / page).read_text(encoding="utf-8")):
            where = f"{page}:{line}"
            assert lang.startswith("{") or lang in _LANGUAGES, (
                f"{where}: code block language {lang!r}; use one of {_LANGUAGES}")
            assert mode is None or (mode in _MODES and lang == "console"), (
                f"{where}: doc-test marker {mode!r} on a {lang} block")
            n_python += lang == "python"
    assert n_python >= 20
    for page in RST_PAGES:   # examples belong in Markdown pages or docstrings, where they run
        text = (DOCS / page).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(\.\. (code-block|code|sourcecode)::|>>>)|::\s*$", text,
                             re.MULTILINE), f"{page} holds a code example that is not run"


@pytest.mark.parametrize("page", [p for p in PAGES if any(
    lang in ("python", "console") for lang, *_ in code_blocks(
        (DOCS / p).read_text(encoding="utf-8")))])
def test_page_examples_run(page, doc_env):
    namespace = {"__name__": f"docs:{page}"}
    for lang, code, line, mode in code_blocks((DOCS / page).read_text(encoding="utf-8")):
        where = f"docs/{page}:{line}"
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)
        elif lang == "console":
            commands = console_commands(code)
            assert commands, f"{where}: console block without a `$ ` command"
            for cmd in commands:
                run_console(shlex.split(cmd), mode, where)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_docstring_examples(module, doc_env):
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in finder.find(mod, module):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()
    if ">>>" in inspect.getsource(mod):   # the finder saw the module's examples
        assert result.attempted > 0


def test_helpers_find_what_the_docs_show():
    page = ("text\n```python\nx = 1\n```\n% doc-test: parse-only\n```console\n"
            "$ treeinf bench run \\\n    --quick\noutput line\n$ pip install -e \".[plot]\"\n"
            "```\n````{toctree}\n```python\nnot code\n```\n````\n")
    blocks = code_blocks(page)
    assert [(b[0], b[2], b[3]) for b in blocks] == [
        ("python", 2, None), ("console", 6, "parse-only"), ("{toctree}", 12, None)]
    assert console_commands(blocks[1][1]) == ["treeinf bench run --quick",
                                              'pip install -e ".[plot]"']
    with pytest.raises(AssertionError, match="does not parse"):
        run_console(["treeinf", "bench", "run", "--no-such-option"], "parse-only", "x")
    with pytest.raises(AssertionError, match="unknown extras"):
        run_console(["pip", "install", "-e", ".[nonexistent]"], None, "x")
    with pytest.raises(AssertionError, match="does not know"):
        run_console(["rm", "-rf", "/"], None, "x")


def test_conf_escapes_plain_text_docstrings_only_in_prose():
    escape = runpy.run_path(str(DOCS / "conf.py"))["_escape_docstring"]   # no .pyc in docs/
    lines = [
        "relative to 1 + |leaf value| and ||W||^2",
        ":Parameters:",
        "    **kernel** : {'to_', 'lpw'}, ndarray of shape (n_features_in_,)",
        "        ``kernel='lp_'`` and :data:`x_ <y>` stay as they are.",
        "The formula::",
        "",
        "    BoostIn(i, e) = |g_e| * w_",
        "",
        ">>> abs_ = |1|",
        "|x|",
        "",
        "after the block, n_train_ is escaped again",
    ]
    escape(None, "class", "x", None, {}, lines)
    assert lines == [
        "relative to 1 + \\|leaf value\\| and ||W||^2",
        ":Parameters:",
        "    **kernel** : {'to\\_', 'lpw'}, ndarray of shape (n_features_in\\_,)",
        "        ``kernel='lp_'`` and :data:`x_ <y>` stay as they are.",
        "The formula::",
        "",
        "    BoostIn(i, e) = |g_e| * w_",
        "",
        ">>> abs_ = |1|",
        "|x|",
        "",
        "after the block, n_train\\_ is escaped again",
    ]
