"""The page at ``/`` in a real browser (Playwright driving Chromium) against a real uvicorn server.

Real photos (a cat and a dog from ../shared/data/cats_vs_dogs, a real MNIST digit); the labels
are read from the page. Without Chromium these tests skip with how to enable them; in CI
(``CI=true``) they fail instead (tests/page_support.py). ``EDGE_UPDATE_SCREENSHOT=1`` also
writes the README's screenshot, docs/page.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.harness.paths import CATS_DOGS_DIR

from .page_support import require_browser, stage_server
from .seed_models import SeedModels
from .support import BUNDLED_MODELS, PROJECT_ROOT, encode, mnist_test_digits, running_server

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data

# Photos the cats-vs-dogs model classifies with > 99.9 % confidence (clear, centred animals).
CAT = CATS_DOGS_DIR / "cats" / "cat.4003.jpg"
DOG = CATS_DOGS_DIR / "dogs" / "dog.4009.jpg"
SCREENSHOT = PROJECT_ROOT / "docs" / "page.png"
KEY = "page-test-key"


@pytest.fixture(scope="module")
def server(seed_models: SeedModels) -> Iterator[str]:
    """The digit model, cats vs dogs, and the random-weight ImageNet seed models."""
    require_browser()
    with running_server(seed_models.served) as running:
        yield running.url


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The first MNIST test digit (a 7) as a PNG file, and its label."""
    digits, labels = mnist_test_digits(1)
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    path.write_bytes(encode(digits[0]))
    return path, str(labels[0])


class Requests:
    """Every URL the page asked for (documents, scripts, styles, images, fetches)."""

    def __init__(self, page) -> None:
        self.urls: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))

    def outside(self, origin: str) -> list[str]:
        return [u for u in self.urls if not (u.startswith(origin + "/") or u.startswith(("blob:", "data:")))]


def open_page(browser, url: str, width: int = 1000, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    requests = Requests(page)
    page.goto(url)
    page.wait_for_selector("#model:not([disabled])", timeout=30_000)
    return context, page, requests


def result_card(page, filename: str):
    card = page.locator("article[data-testid=result]", has_text=filename)
    card.locator("[data-testid=prediction], [data-testid=error]").wait_for(timeout=60_000)
    return card


def test_classifies_a_cat_a_dog_and_a_digit(browser, server: str, digit_png, tmp_path: Path) -> None:
    context, page, requests = open_page(browser, server + "/")
    try:
        models = httpx.get(server + "/models").json()
        # The default model is preselected; random-weight models are marked in the picker.
        assert page.input_value("#model") == models["default_model"]
        for model in models["models"]:
            option = page.locator(f"#model option[value='{model['name']}']").inner_text()
            assert ("not for real predictions" in option) is (not model["for_real_predictions"]), option
        assert any(not m["for_real_predictions"] for m in models["models"])

        page.select_option("#model", "cats_vs_dogs")
        page.set_input_files("#files", [str(CAT), str(DOG)])
        cat, dog = result_card(page, CAT.name), result_card(page, DOG.name)
        # Two images: one batch request where the server has the route, else one request each.
        has_batch = "/models/{name}/predict/batch" in httpx.get(server + "/openapi.json").json()["paths"]
        posts = [u for u in requests.urls if "/models/cats_vs_dogs/predict" in u]
        if has_batch:
            assert len(posts) == 1 and "/predict/batch?" in posts[0], posts
        else:
            assert len(posts) == 3 and "/predict/batch?" in posts[0], posts  # tried, then fell back
        assert "cat" in cat.get_by_test_id("prediction").inner_text()
        assert "dog" in dog.get_by_test_id("prediction").inner_text()
        for card, label in ((cat, "cat"), (dog, "dog")):
            rows = card.get_by_test_id("top-k-row")
            assert rows.count() == 2  # two classes, top-k 3
            assert rows.first.inner_text().startswith(label)
            meta = card.locator(".meta").inner_text()
            assert "cats_vs_dogs v" in meta and " ms" in meta

        digit_path, digit_label = digit_png
        page.select_option("#model", "mnist")
        page.fill("#top-k", "5")
        page.set_input_files("#files", str(digit_path))
        digit = result_card(page, digit_path.name)
        assert digit.get_by_test_id("prediction").inner_text().startswith(digit_label)
        assert digit.get_by_test_id("top-k-row").count() == 5

        assert requests.outside(server) == []
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        if os.environ.get("EDGE_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / "page.png", SCREENSHOT)
    finally:
        context.close()


def test_a_text_file_gets_a_clear_error(browser, server: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not an image\n")
    context, page, _ = open_page(browser, server + "/")
    try:
        page.set_input_files("#files", str(notes))
        error = result_card(page, "notes.txt").get_by_test_id("error").inner_text()
        assert error.startswith("Not an image"), error
    finally:
        context.close()


def test_phone_width_layout(browser, server: str) -> None:
    context, page, _ = open_page(browser, server + "/", width=390, height=844)
    try:
        page.select_option("#model", "cats_vs_dogs")
        page.set_input_files("#files", str(CAT))
        card = result_card(page, CAT.name)
        assert "cat" in card.get_by_test_id("prediction").inner_text()
        # Nothing wider than the screen: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for selector in ("[data-testid=prediction]", "[data-testid=top-k-row]", "#drop", "#model"):
            box = page.locator(selector).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
    finally:
        context.close()


def test_api_key_is_asked_for_and_kept_in_memory_only(browser, digit_png, tmp_path: Path) -> None:
    require_browser()
    # A small body limit too, to see the "too large" message with a real photo.
    with running_server(BUNDLED_MODELS, EDGE_API_KEYS=KEY, EDGE_MAX_BODY_BYTES="4000") as running:
        context = browser.new_context()
        page = context.new_page()
        try:
            page.goto(running.url + "/")
            page.get_by_test_id("api-key").wait_for()
            assert "API key" in page.get_by_test_id("status").inner_text()
            page.get_by_test_id("api-key").fill("wrong-key")
            page.get_by_role("button", name="Use key").click()
            # A locator assertion, not wait_for_function: a string predicate that is not true at
            # once is polled by eval() inside the page, which its CSP (no 'unsafe-eval') refuses.
            from playwright.sync_api import expect

            expect(page.get_by_test_id("status")).to_contain_text("invalid", timeout=30_000)
            page.get_by_test_id("api-key").fill(KEY)
            page.get_by_role("button", name="Use key").click()
            page.wait_for_selector("#model:not([disabled])")

            digit_path, digit_label = digit_png
            page.set_input_files("#files", str(digit_path))
            assert (
                result_card(page, digit_path.name)
                .get_by_test_id("prediction")
                .inner_text()
                .startswith(digit_label)
            )

            page.set_input_files("#files", str(CAT))
            error = result_card(page, CAT.name).get_by_test_id("error").inner_text()
            assert error.startswith("Too large"), error

            stored = page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
            assert stored == [0, 0, ""]
            assert KEY not in page.url
        finally:
            context.close()


def test_works_under_a_stage_prefix_with_docs(browser, digit_png) -> None:
    require_browser()
    with stage_server(BUNDLED_MODELS) as stage:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(stage))
        for url in (stage + "/", stage):  # with and without the trailing slash
            context, page, requests = open_page(browser, url)
            try:
                digit_path, digit_label = digit_png
                page.set_input_files("#files", str(digit_path))
                prediction = result_card(page, digit_path.name).get_by_test_id("prediction").inner_text()
                assert prediction.startswith(digit_label)
                assert all(
                    u == stage or u.startswith(stage + "/") for u in requests.urls if u.startswith(origin)
                ), requests.urls
                assert requests.outside(origin) == []
            finally:
                context.close()

        context = browser.new_context()
        page = context.new_page()
        requests = Requests(page)
        try:
            page.goto(stage + "/docs")
            page.locator(".swagger-ui .info .title").wait_for(timeout=30_000)
            assert "edge-infer" in page.locator(".swagger-ui .info .title").inner_text()
            assert page.locator(".opblock-summary-path", has_text="/models/{name}/predict").count() >= 1
            assert requests.outside(origin) == []
        finally:
            context.close()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_no_served_page_refers_to_an_outside_url(server: str, browser) -> None:
    """The page and /docs, their HTML and everything they load, come from the service."""
    with httpx.Client(base_url=server, timeout=30) as client:
        for path in ("/", "/docs"):
            response = client.get(path)
            assert response.status_code == 200
            parser = _Links()
            parser.feed(response.text)
            assert parser.links, path
            for link in parser.links:
                if link.startswith("data:"):  # inline, fetched from nowhere
                    continue
                absolute = urljoin(server + path, link)
                assert absolute.startswith(server + "/"), (path, link)
                assert client.get(absolute).status_code == 200, absolute
        assert "Content-Security-Policy" in client.get("/").headers

    context = browser.new_context()
    page = context.new_page()
    requests = Requests(page)
    try:
        page.goto(server + "/docs")
        page.locator(".swagger-ui .info .title").wait_for(timeout=30_000)
        assert requests.outside(server) == []
        assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in requests.urls)
    finally:
        context.close()
