"""MkDocs hooks (``hooks:`` in mkdocs.yml): pages made from files that live outside ``docs/``.

- The home page is ``README.md`` itself, so the two never drift: its links into ``docs/`` are
  rewritten to be relative to the site (``docs/api.md`` -> ``api.md``).
- The benchmark tables are rendered from ``benchmarks/results/results.json`` by
  ``tests.harness.report.markdown`` (the renderer ``make bench`` uses), wherever a page holds
  ``RESULTS_MARKER``; the chart ``benchmarks/results/chart.png`` is added to the site beside them.
- The per-pod sizing table (``sizing_markdown``) is rendered from the same file wherever a page
  holds ``SIZING_MARKER``.

No number from a benchmark is copied by hand into a page: a new ``make bench`` shows on the
next build.

``tests/test_docs.py`` builds the site with ``mkdocs build --strict`` and checks the rendered
tables against the results file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
RESULTS_MARKER = "<!-- results.json -->"
SIZING_MARKER = "<!-- results.json: sizing -->"
CHART_URI = "img/benchmark-chart.png"
# A Markdown link or image target that points into docs/: ](docs/page.md#anchor)
_DOCS_LINK = re.compile(r"\]\(docs/")


def readme_as_home(text: str) -> str:
    """README.md with its ``docs/...`` link targets made relative to the site root."""
    return _DOCS_LINK.sub("](", text)


def results_markdown(page_dir: str = "") -> str:
    """The tables of the last ``make bench``, from ``benchmarks/results/results.json``.

    ``page_dir`` is the page's folder inside the site ("" for a top-level page), so the chart's
    link is relative to the page as MkDocs expects.
    """
    if str(ROOT) not in sys.path:  # mkdocs run from outside the project's venv
        sys.path.insert(0, str(ROOT))
    from tests.harness import report

    results = _load_results()
    depth = len([p for p in page_dir.split("/") if p])
    return report.markdown(results, "../" * depth + CHART_URI)


def _load_results() -> dict:
    return json.loads((RESULTS / "results.json").read_text())


def sizing_markdown() -> str:
    """Per-model capacity of one pod from the last ``make bench``: warm int8 throughput and the
    HTTP p50 of one real upload, with the machine they were measured on."""
    results = _load_results()
    meta = results["meta"]
    cpu = meta.get("cpu", {})
    flags = " ".join(cpu.get("int8_flags", [])) or "no int8 ISA flags"
    lines = [
        "| model | warm int8 images/s, batch 1 | batch " + str(meta["batch"]) + " | HTTP p50, one upload "
        "| sequential requests/s per pod |",
        "|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        warm, http = model["warm"]["onnx_int8"], model["http"]["uvicorn"]
        lines.append(
            f"| {name} | {warm['throughput_batch1']:,.0f} | {warm['throughput_batch']:,.0f} | "
            f"{http['p50_ms']:.1f} ms | ~{1000 / http['p50_ms']:,.0f} |"
        )
    lines += [
        "",
        f"Measured {meta['date'][:10]} by `{meta['command']}` on {meta['machine']}; CPU: "
        f"{cpu.get('model', 'unknown')} ({flags}). Full tables: [Benchmarks](benchmarks.md#results).",
    ]
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "index.md", content=readme_as_home(README.read_text())))
    files.append(File.generated(config, CHART_URI, abs_src_path=str(RESULTS / "chart.png")))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if SIZING_MARKER in markdown:
        markdown = markdown.replace(SIZING_MARKER, sizing_markdown())
    if RESULTS_MARKER in markdown:
        parent = Path(page.file.src_uri).parent
        page_dir = "" if parent == Path(".") else parent.as_posix()
        markdown = markdown.replace(RESULTS_MARKER, results_markdown(page_dir))
    return markdown
