"""The book frame: toc, chapter pairing, Colab set-up cells, bibliography, Colab links."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load_sync():
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _load_sync()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = sync.chapter_sources()
CHAPTER_IDS = [p.stem for p in CHAPTERS]


def toc_files(node=TOC) -> list[str]:
    """Every `file:` in _toc.yml, root first."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(node[key])
        for value in node.values():
            if isinstance(value, (list, dict)):
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def resolve(docname: str) -> Path | None:
    path = ROOT / docname
    if path.suffix in (".md", ".ipynb") and path.exists():
        return path
    for suffix in (".md", ".ipynb"):
        if path.with_suffix(suffix).exists():
            return path.with_suffix(suffix)
    return None


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


# --- table of contents --------------------------------------------------------


def test_chapters_exist():
    assert CHAPTERS, "no chapters/*.md found"


def test_toc_root_and_parts():
    assert TOC["root"] == "book/intro"
    captions = [part["caption"] for part in TOC["parts"]]
    assert captions[0] == "Foundations"
    assert TOC["parts"][0]["chapters"][0]["file"] == "chapters/introduction"
    allowed = {"Foundations", "Learning environments", "Beyond simulators", "Practicalities"}
    assert set(captions) <= allowed


def test_every_toc_file_exists():
    missing = [f for f in toc_files() if resolve(f) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_chapter_is_in_toc():
    listed = {str(Path(f).with_suffix("")) for f in toc_files()}
    unlisted = [p.name for p in CHAPTERS if f"chapters/{p.stem}" not in listed]
    assert not unlisted, f"chapters missing from _toc.yml: {unlisted}"


def test_build_settings():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "cache"  # scripts/build_book.py keeps it fresh
    assert execute["allow_errors"] is False
    assert execute["timeout"] >= 600
    assert CONFIG["only_build_toc_files"] is True
    excluded = set(CONFIG["exclude_patterns"])
    assert {".venv", "_build", "README.md", "tests", "chapters/*.ipynb"} <= excluded
    assert "sphinx_exercise" in CONFIG["sphinx"]["extra_extensions"]
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert "scripts/build_book.py" in (ROOT / "Makefile").read_text()
    build = (ROOT / "scripts" / "build_book.py").read_text()
    assert re.search(r'"build", str\(ROOT\), "--all", "-W", "-n", "--keep-going"', build)


# --- chapters: .md source, .ipynb twin ------------------------------------------


@pytest.mark.parametrize("md", CHAPTERS, ids=CHAPTER_IDS)
def test_chapter_is_paired_myst_notebook(md):
    nb = jupytext.read(md)
    assert nb.metadata["jupytext"]["formats"] == "md:myst,ipynb"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert sync.twin(md).exists(), f"{md.name} has no .ipynb twin: run `make sync`"


@pytest.mark.parametrize("md", CHAPTERS, ids=CHAPTER_IDS)
def test_ipynb_matches_md(md):
    """Fails when a chapter's .md and its committed .ipynb drift apart."""
    from_md = sync.cell_summary(jupytext.read(md))
    committed = sync.cell_summary(nbformat.read(sync.twin(md), as_version=4))
    assert committed == from_md, f"{md.name} and its .ipynb differ: run `make sync`"


@pytest.mark.parametrize("md", CHAPTERS, ids=CHAPTER_IDS)
def test_no_outputs_committed(md):
    nb = nbformat.read(sync.twin(md), as_version=4)
    assert not sync.has_outputs(nb), f"{sync.twin(md).name} has outputs: run `make sync`"


@pytest.mark.parametrize("md", CHAPTERS, ids=CHAPTER_IDS)
def test_sync_has_nothing_to_do(md):
    assert sync.sync(md, check=True) == []


# --- the Colab set-up cell --------------------------------------------------------


def test_repository_named_once_in_config():
    url, branch = sync.repository()
    assert url == CONFIG["repository"]["url"].rstrip("/")
    assert branch == CONFIG["repository"]["branch"]
    assert url.startswith("https://github.com/")


@pytest.mark.parametrize("md", CHAPTERS, ids=CHAPTER_IDS)
def test_first_cell_is_setup_cell_from_config(md):
    url, branch = sync.repository()
    expected = sync.setup_cell_source()
    assert f"git+{url}@{branch}" in expected
    for nb in (jupytext.read(md), nbformat.read(sync.twin(md), as_version=4)):
        cell = first_code_cell(nb)
        assert cell.source.strip() == expected.strip()
        assert sync.SETUP_TAG in cell.metadata.get("tags", [])
        setup_cells = [c for c in nb.cells if sync.SETUP_TAG in c.metadata.get("tags", [])]
        assert len(setup_cells) == 1


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(sync.setup_cell_source(), {})
    assert calls == []


def test_setup_cell_on_colab_installs_repo_and_keeps_jax(monkeypatch):
    import importlib.metadata

    calls = []

    class Done:
        returncode = 0

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        return Done()

    monkeypatch.setattr(subprocess, "run", fake_run)
    colab, output = type(sys)("google.colab"), type(sys)("google.colab.output")
    widget_managers = []
    output.enable_custom_widget_manager = lambda: widget_managers.append(True)
    colab.output = output
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.delenv(sync.INSTALL_SPEC_ENV, raising=False)
    exec(sync.setup_cell_source(), {})
    assert widget_managers == [True]  # the play panels need Colab's widget manager
    cmd, paper = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert sync.install_spec(*sync.repository()) in cmd
    for package in ("jax", "jaxlib"):
        assert f"{package}=={importlib.metadata.version(package)}" in cmd
    # The paper's SCBs: data files only, so nothing of theirs can move jax.
    assert paper[-2:] == ["--no-deps", sync.paper_requirement()]

    # The same pinned command, with another learnenv (scripts/check_colab_install.py: a wheel).
    wheel = "/tmp/learnenv-0.1.0-py3-none-any.whl"
    monkeypatch.setenv(sync.INSTALL_SPEC_ENV, wheel)
    exec(sync.setup_cell_source(), {})
    assert calls[-2] == [wheel if arg == sync.install_spec(*sync.repository()) else arg for arg in cmd]

    class Failed:
        returncode = 1

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(RuntimeError, match="jax=="):
        exec(sync.setup_cell_source(), {})


@pytest.mark.parametrize("md", CHAPTERS, ids=CHAPTER_IDS)
def test_chapters_use_shipped_results_and_runs_dir(md):
    """On Colab there is no ../results (the wheel carries the files, found by
    learnenv.results.path), and run folders belong in Drive when it is mounted."""
    code = "\n".join(c.source for c in jupytext.read(md).cells if c.cell_type == "code")
    assert not re.search(r"""["']\.\./results""", code), "read shipped files with learnenv.results.path"
    assert not re.search(r"""Path\(\s*["']runs""", code), "put run folders in learnenv.config.runs_dir()"


# --- bibliography -------------------------------------------------------------------

LECTURE_PAPERS = {
    "ferreira2022learning": "Learning Synthetic Environments and Reward Networks",
    "liesen2024discovering": "Discovering Minimal Reinforcement Learning Environments",
    "escontrela2023video": "Video Prediction Models as Rewards",
    "yang2024learning": "Learning Interactive Real-World Simulators",
    "bruce2024genie": "Genie: Generative Interactive Environments",
    "klissarov2023motif": "Motif: Intrinsic Motivation from Artificial Intelligence Feedback",
    "klissarov2021flexible": "Flexible Option Learning",
    # The lecture also cites "Dockhorn & Kruse 2023", a publication neither the slides
    # nor shared/reference/papers.md identify: the book does not cite it (references.bib).
}
OTHER_REFERENCES = [
    "lange2022gymnax", "freeman2021brax", "lu2022discovered", "schulman2017proximal",
    "mnih2015human", "vanhasselt2016deep", "wang2016dueling", "haarnoja2018soft",
    "fujimoto2018addressing", "lillicrap2016continuous", "schaul2011high",
    "wierstra2014natural", "lange2023evosax", "sutton1991dyna", "ha2018world",
    "hafner2023mastering", "pathak2017curiosity",
]
BIB = (ROOT / "book" / "references.bib").read_text()
BIB_KEYS = set(re.findall(r"@\w+\{([^,\s]+),", BIB))


def test_bibliography_holds_every_lecture_paper():
    for key, title in LECTURE_PAPERS.items():
        assert key in BIB_KEYS, key
        entry = BIB[BIB.index("{" + key + ",") :].split("\n}\n", 1)[0]
        assert title in entry, key
    assert not set(OTHER_REFERENCES) - BIB_KEYS


def test_bibliography_keys_are_unique():
    keys = re.findall(r"@\w+\{([^,\s]+),", BIB)
    assert len(keys) == len(set(keys))


def test_every_citation_resolves():
    sources = [*CHAPTERS, *(ROOT / "book").glob("*.md")]
    cited = set()
    for path in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "no citations found"
    assert not cited - BIB_KEYS, f"unknown citation keys: {sorted(cited - BIB_KEYS)}"


# --- the built HTML: Colab links ------------------------------------------------------


@pytest.fixture(scope="module")
def html_without_execution(tmp_path_factory):
    """Build the book with execution off (fast): same config, warnings still fail it."""
    out = tmp_path_factory.mktemp("book")
    config = dict(CONFIG)
    config["execute"] = {**CONFIG["execute"], "execute_notebooks": "off"}
    config_path = out / "_config.yml"
    config_path.write_text(yaml.safe_dump(config))
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", str(ROOT), "--path-output", str(out),
           "--config", str(config_path), "-W", "-n", "--keep-going", "--all"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return out / "_build" / "html"


def test_colab_link_of_every_chapter_opens_its_ipynb(html_without_execution):
    url, branch = sync.repository()
    org_repo = url.removeprefix("https://github.com/")
    chapters = [f for f in toc_files() if f.startswith("chapters/")]
    assert chapters
    for docname in chapters:
        stem = str(Path(docname).with_suffix(""))
        html = (html_without_execution / f"{stem}.html").read_text()
        links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', html))
        assert links, f"{stem}.html has no Colab button"
        expected = f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{stem}.ipynb"
        assert links == {expected}, f"{stem}.html links {links}"
        assert (ROOT / f"{stem}.ipynb").exists()


def test_book_fingerprint_does_not_depend_on_how_learnenv_is_found(monkeypatch):
    """The execution cache is kept only while the fingerprint holds: the same files and
    packages must give the same fingerprint whether or not lib/ is on sys.path (which
    adds a second, identical learnenv distribution: the egg-info next to the sources)."""
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    before = build_book.inputs_fingerprint()
    monkeypatch.syspath_prepend(str(ROOT / "lib"))
    assert build_book.inputs_fingerprint() == before
    monkeypatch.setenv("LEARNENV_PRESET", "full")
    assert build_book.inputs_fingerprint() != before  # the preset is part of it
