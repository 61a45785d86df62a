"""learnenv.results: shipped result files, from a checkout and from an installed wheel.

Chapters read these files instead of re-running hour-long experiments; on
Colab (a wheel, no checkout) a missing file used to mean a silent re-run.
The end-to-end check (a real wheel in a fresh venv, a chapter executed as on
Colab) is tests/test_install.py::test_chapter_runs_as_on_colab.
"""

from __future__ import annotations

import glob
import sys
import tomllib
from pathlib import Path

import pytest

from learnenv import results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_install_record():
    """The installed-files lookup is cached per process; each test reads its own."""
    results.installed_results.cache_clear()
    yield
    results.installed_results.cache_clear()


def fake_install(tmp_path: Path, files: dict[str, str]) -> Path:
    """A distribution ``learnenv`` whose RECORD lists ``files`` under share/learnenv/results,
    laid out as pip installs a wheel's data files: the prefix above site-packages."""
    site = tmp_path / "prefix" / "site-packages"
    info = site / "learnenv-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: learnenv\nVersion: 0.1.0\n")
    record = ["learnenv/__init__.py,,"]
    for relative, text in files.items():
        target = tmp_path / "prefix" / results.DATA_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        record.append(f"../{results.DATA_DIR}/{relative},,")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return site


def test_checkout_file_is_found_in_results_folder():
    found = results.path("se/se-cartpole-quick.json")
    assert found == ROOT / "results" / "se" / "se-cartpole-quick.json"
    assert found.is_file()


def test_missing_file_in_checkout_names_it_and_suggests_close_names():
    with pytest.raises(FileNotFoundError) as err:
        results.path("se/se-cartpole-quik.json")
    message = str(err.value)
    assert "'se/se-cartpole-quik.json'" in message and "checkout" in message
    assert "'se/se-cartpole-quick.json'" in message


@pytest.mark.parametrize("bad", ["/etc/passwd", "../pyproject.toml", "se/../../README.md", ""])
def test_paths_outside_results_are_refused(bad):
    with pytest.raises(ValueError, match="inside results/"):
        results.path(bad)


def test_installed_file_is_found_through_the_install_record(tmp_path, monkeypatch, fresh_install_record):
    site = fake_install(tmp_path, {"se/a.json": "{}", "scb/b.png": "png"})
    monkeypatch.setattr(results, "checkout_results", lambda: None)
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    assert results.path("se/a.json") == tmp_path / "prefix" / results.DATA_DIR / "se" / "a.json"
    assert results.path("scb/b.png").read_text() == "png"
    with pytest.raises(FileNotFoundError, match="installed data .* Did you mean 'se/a.json'"):
        results.path("se/b.json")


def test_install_without_result_files_says_how_to_get_them(tmp_path, monkeypatch, fresh_install_record):
    site = fake_install(tmp_path, {})
    monkeypatch.setattr(results, "checkout_results", lambda: None)
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    with pytest.raises(FileNotFoundError, match="without its result files .* reinstall it from a wheel"):
        results.path("se/se-cartpole-quick.json")


def test_wheel_data_files_cover_every_result_file():
    """A result file in a folder that pyproject.toml does not list would be missing on Colab."""
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {}
    for target, patterns in data_files.items():
        assert target == results.DATA_DIR or target.startswith(results.DATA_DIR + "/"), target
        for pattern in patterns:
            for file in glob.glob(pattern, root_dir=ROOT):
                shipped[file] = target
    wanted = [p for p in (ROOT / "results").rglob("*") if p.suffix in (".json", ".png")]
    assert wanted
    for file in wanted:
        relative = file.relative_to(ROOT).as_posix()
        assert relative in shipped, f"{relative}: add its folder to [tool.setuptools.data-files]"
        # Installed where results.path looks for it: the same path below DATA_DIR.
        assert shipped[relative] + "/" + file.name == results.DATA_DIR + relative.removeprefix("results")
