"""The page's "read a number" switch and camera button, in Chromium with a phone's viewport.

Playwright drives Debian's Chromium (tests/page_support.py: skipped without it, failing in
CI) against a real uvicorn server serving the bundled digit model and a tiny RGB (non-digit)
model. The photo is a number written with MNIST *test* digits (tests.harness.digit_scenes).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.harness.digit_scenes import render_numbers

from .page_support import require_browser
from .support import BUNDLED_MODELS, mnist_test_digits, running_server
from .test_number_http import _tiny_rgb_classifier, _tiny_rgb_manifest
from .tiny_models import publish

# A phone: 390 x 844 CSS px at 3x, touch, mobile (as Playwright's iPhone 12-13 descriptors).
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    require_browser()
    root = tmp_path_factory.mktemp("page-models")
    models = root / "models"
    shutil.copytree(BUNDLED_MODELS / "mnist", models / "mnist")
    publish(models / "tiny-rgb", _tiny_rgb_classifier(root / "tiny.onnx"), _tiny_rgb_manifest())
    with running_server(models, EDGE_DEFAULT_MODEL="mnist") as running:
        yield running.url


@pytest.fixture(scope="module")
def number_photo(tmp_path_factory):
    digits, labels = mnist_test_digits(4010)
    # The first well-separated number of the set (the HTTP test measures accuracy).
    photo = next(p for p in render_numbers(digits[4000:4010], labels[4000:4010], 3) if len(p.number) >= 2)
    path = tmp_path_factory.mktemp("number") / "number.jpg"
    path.write_bytes(photo.jpeg)
    return path, photo


def _open(browser, url: str, **context_args):
    context = browser.new_context(**context_args)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#model:not([disabled])", timeout=30_000)
    return context, page


def test_number_switch_reads_a_number_and_draws_its_boxes_on_a_phone(browser, server, number_photo):
    path, photo = number_photo
    context, page = _open(browser, server, **PHONE)
    try:
        switch = page.get_by_test_id("number-switch")
        switch.wait_for(state="visible", timeout=10_000)
        switch.check()
        page.get_by_test_id("file-input").set_input_files(str(path))
        number = page.get_by_test_id("number")
        number.wait_for(timeout=30_000)
        read = number.inner_text().split(" — ")[0]
        boxes = page.get_by_test_id("digit-box")
        assert boxes.count() == len(read) == page.get_by_test_id("digit-row").count()
        assert [boxes.nth(i).inner_text() for i in range(boxes.count())] == list(read)
        # The boxes sit over the photo, left to right, inside it.
        image = page.locator(".card.number img").bounding_box()
        lefts = []
        for i in range(boxes.count()):
            box = boxes.nth(i).bounding_box()
            assert image["x"] - 1 <= box["x"] and box["x"] + box["width"] <= image["x"] + image["width"] + 1
            assert image["y"] - 1 <= box["y"] and box["y"] + box["height"] <= image["y"] + image["height"] + 1
            lefts.append(box["x"])
        assert lefts == sorted(lefts)
        # Nothing wider than the phone's screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_camera_button_opens_the_back_camera_on_a_phone_only(browser, server, number_photo):
    path, _ = number_photo
    context, page = _open(browser, server, **PHONE)
    try:
        camera = page.get_by_test_id("camera-input")
        assert camera.get_attribute("accept") == "image/*"
        assert camera.get_attribute("capture") == "environment"
        assert page.get_by_test_id("camera-button").is_visible()
        # A photo taken with it is classified like a chosen file.
        camera.set_input_files(str(path))
        page.get_by_test_id("prediction").wait_for(timeout=30_000)
    finally:
        context.close()
    context, page = _open(browser, server, viewport={"width": 1000, "height": 900})
    try:
        assert not page.get_by_test_id("camera-button").is_visible()  # a desktop with a mouse
    finally:
        context.close()


def test_number_switch_is_offered_for_digit_models_only(browser, server):
    context, page = _open(browser, server, **PHONE)
    try:
        page.get_by_test_id("number-switch").wait_for(state="visible", timeout=10_000)
        page.get_by_test_id("model-select").select_option("tiny-rgb")
        page.get_by_test_id("number-switch").wait_for(state="hidden", timeout=10_000)
        page.get_by_test_id("model-select").select_option("mnist")
        page.get_by_test_id("number-switch").wait_for(state="visible", timeout=10_000)
    finally:
        context.close()
