"""The docs site builds in strict mode, every page is in its nav, and the README stays short."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

MAIN_JOB = "pip install -e . && python -m relattr_tf.train --flagfile=configs/quickstart.flags"
TESTS = 'pip install -e ".[test]" && pytest'


def _nav_pages(nav):
    """The page paths of an mkdocs nav (a list of strings, {title: path} and {title: [...]})."""
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                yield from _nav_pages(value)
            else:
                yield value


def _nav():
    import yaml  # a dependency of mkdocs
    # mkdocs.yml may hold !!python/name tags (e.g. for emoji); this test reads only the nav
    loader = type("NavLoader", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *args: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=loader)["nav"]


def test_the_site_builds_in_strict_mode(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
         "-f", str(ROOT / "mkdocs.yml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_readme_is_short_and_keeps_both_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert MAIN_JOB in readme
    assert TESTS in readme
    assert "TEST_TIME" not in readme


def test_every_page_is_in_the_nav():
    nav = set(_nav_pages(_nav()))
    missing = [p for p in nav if not (DOCS / p).is_file()]
    assert not missing, f"nav names pages that do not exist: {missing}"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    # relattr_tf.report generates docs/results/<study>.md: no nav entry needed (not_in_nav)
    generated = {p for p in pages if p.startswith("results/") and p != "results/index.md"}
    orphans = sorted(pages - generated - nav)
    assert not orphans, f"pages missing from mkdocs.yml's nav: {orphans}"
    assert "results/index.md" in nav
