"""The README and the documentation site (mkdocs.yml, docs/): built, linked, true to the code.

- ``mkdocs build --strict`` passes: a broken link or anchor, a nav entry without its page, or a
  page left out of the nav fails the build (``validation`` in mkdocs.yml).
- The generated tables (docs/hooks.py) are those of ``benchmarks/results/results.json``: the
  benchmark page, the sizing table of the scale-out page, and the README's headline table.
- README.md stays a newcomer's page: at most 20 KB, every link resolves (files and anchors), the
  two set-up commands that CI runs, and its API and configuration tables name exactly the
  app's routes and settings.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest
from markdown.extensions.toc import slugify

from tests.harness import report

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results" / "results.json"
# The bound for the README (issue 22): what it is, set-up, one request, short tables.
README_MAX_BYTES = 20 * 1024
# [text](target) and ![alt](target); a target has no spaces or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# `GET /path`, `POST /path?query` inside a code span of a table row.
ROUTE = re.compile(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`?\s]*)[^`]*`")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built by ``mkdocs build --strict`` into a temporary directory."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


class _Tables(HTMLParser):
    """Every table row of an HTML page, as a tuple of its cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, ...]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _html_rows(page: Path) -> list[tuple[str, ...]]:
    parser = _Tables()
    parser.feed(page.read_text())
    return parser.rows


def _markdown_rows(markdown: str) -> list[tuple[str, ...]]:
    """Table rows of a Markdown text as the rendered cells' text (no separator rows)."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(tuple(html.unescape(re.sub(r"\*\*|`", "", c)) for c in cells))
    return rows


def _results() -> dict:
    return json.loads(RESULTS.read_text())


def test_site_builds_strict(site: Path) -> None:
    for page in ("index.html", "api/index.html", "benchmarks/index.html", "img/benchmark-chart.png"):
        assert (site / page).is_file(), f"{page} missing from the built site"


def test_home_page_is_the_readme(site: Path) -> None:
    home = (site / "index.html").read_text()
    for heading in re.findall(r"^## (.+)$", README.read_text(), flags=re.M):
        assert f'id="{slugify(heading, "-")}"' in home, f"README section {heading!r} not on the home page"


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("benchmarks/index.html", lambda: report.markdown(_results(), "chart.png")),
        ("scale-out/index.html", lambda: _hooks().sizing_markdown()),
    ],
    ids=["benchmarks", "scale-out sizing"],
)
def test_generated_tables_match_the_results(site: Path, page: str, expected) -> None:
    """Every table row rendered from results.json is a row of the built page."""
    want = _markdown_rows(expected())
    got = _html_rows(site / page)
    assert len(want) > 5, "the results render to almost no table rows"
    missing = [row for row in want if row not in got]
    assert not missing, f"{page}: rows of results.json not on the page (first 3): {missing[:3]}"


def test_readme_headline_table_is_the_results() -> None:
    text = README.read_text()
    head, found, rest = text.partition(report.HEADLINE_START)
    block, found_end, _ = rest.partition(report.HEADLINE_END)
    assert found and found_end, "README lost its headline markers (make bench writes between them)"
    assert block.strip() == report.headline(_results()).strip(), (
        "README's headline table differs from benchmarks/results/results.json: "
        "`python -m benchmarks --report-only` rewrites it"
    )


def test_make_bench_rewrites_the_readme_headline_in_place(tmp_path: Path) -> None:
    """What ``make bench`` does to the README (``report.update_readme``) leaves it unchanged
    when the results are unchanged: one headline block, nothing appended."""
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text())
    report.update_readme(copy, report.headline(_results()), report.HEADLINE_START, report.HEADLINE_END)
    assert copy.read_text() == README.read_text()


def test_readme_is_short() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (at most {README_MAX_BYTES}): move detail into docs/"
    )


def _anchors(markdown_file: Path) -> set[str]:
    text = markdown_file.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # headings inside code blocks are not headings
    return {slugify(h.strip(), "-") for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_readme_links_resolve() -> None:
    links = LINK.findall(README.read_text())
    assert links, "README has no links into the documentation"
    for target in links:
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (ROOT / path) if path else README
        assert file.exists(), f"README links to {target}, which does not exist"
        if anchor:
            assert file.suffix == ".md", f"README links to an anchor in a non-Markdown file: {target}"
            assert anchor in _anchors(file), f"README links to {target}: no such heading in {file.name}"


def test_readme_keeps_the_two_setup_commands() -> None:
    text = README.read_text()
    assert "| `make serve` |" in text and "| `make test` |" in text
    # CI runs the README's test command; if .ci/run changes command, the README must follow.
    assert re.search(r"^\s*make test\b", (ROOT / ".ci" / "run").read_text(), flags=re.M)


def _section(markdown: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``##`` heading."""
    _, found, rest = markdown.partition(f"\n## {heading}\n")
    assert found, f"no section ## {heading}"
    return rest.split("\n## ", 1)[0]


def _documented_routes(section: str) -> set[tuple[str, str]]:
    """(method, path) pairs of an API table, with ``[optional]`` segments expanded."""
    found = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for method, path in ROUTE.findall(first_cell):
            variants = [path]
            while any("[" in v for v in variants):
                variants = [
                    re.sub(r"\[([^\[\]]*)\]", keep, v, count=1) for v in variants for keep in (r"\1", "")
                ]
            found |= {(method, v.replace("/*", "")) for v in variants}
    return found


def _app_routes() -> set[tuple[str, str]]:
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Mount

    from service.app import create_app
    from service.config import Settings
    from service.engine.registry import ModelRegistry

    app = create_app(Settings(metrics_enabled=True, docs_enabled=True), ModelRegistry())
    routes = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            routes.add(("GET", route.path))
            continue
        routes |= {(m, route.path) for m in getattr(route, "methods", None) or {"GET"} if m != "HEAD"}
    return routes


@pytest.mark.parametrize(("doc", "heading"), [("README.md", "API"), ("docs/api.md", "Routes")])
def test_api_table_names_exactly_the_apps_routes(doc: str, heading: str) -> None:
    documented = _documented_routes(_section((ROOT / doc).read_text(), heading))
    actual = _app_routes()
    assert actual - documented == set(), f"{doc}: routes of the app missing from the API table"
    assert documented - actual == set(), f"{doc}: API table names routes the app does not have"


def test_readme_configuration_table_names_every_setting() -> None:
    from service.config import ENV_PREFIX, Settings

    section = _section(README.read_text(), "Configuration")
    documented = set(re.findall(r"`(EDGE_[A-Z_]+)`", section))
    settings = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from README's configuration table"
    assert documented - settings == set(), "README's configuration table names unknown settings"


def _code_spans() -> list[tuple[str, str]]:
    """(file name, code span or code block text) of README.md and every docs/ page."""
    spans = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        spans += [(page.name, s) for s in re.findall(r"```.*?```|`[^`\n]+`", text, flags=re.S)]
    return spans


# Repository paths named in the docs (a URL path such as /docs/assets/* is not one).
REPO_PATH = re.compile(r"(?<![/\w.])((?:service|convert|benchmarks|infra|tests|models_onnx)/[\w./*-]*)")


def test_paths_commands_and_objects_named_in_the_docs_exist() -> None:
    """Files, ``python -m`` modules and ``service.*`` objects the docs name are in the code, so
    moving a module (or a results file) without its documentation fails here."""
    import importlib
    import importlib.util

    problems = []
    for page, span in _code_spans():
        for path in REPO_PATH.findall(span):
            if not any(ROOT.glob(path.rstrip("/"))):
                problems.append(f"{page}: {path} does not exist")
        for module in re.findall(r"python3? -m ((?:benchmarks|convert|service|infra)\b[\w.]*)", span):
            if importlib.util.find_spec(module) is None:
                problems.append(f"{page}: python -m {module}: no such module")
        for name in re.findall(r"(?<![\w.])(service(?:\.\w+)+(?::\w+)?)", span):
            module_name, _, attribute = name.replace(":", ".").rpartition(".")
            try:
                found = hasattr(importlib.import_module(module_name), attribute)
            except ImportError:
                found = importlib.util.find_spec(name.replace(":", ".")) is not None
            if not found:
                problems.append(f"{page}: {name} does not exist")
    assert not problems, "\n".join(problems)
