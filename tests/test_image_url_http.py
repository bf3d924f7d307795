"""JSON bodies on the native predict routes over real HTTP: base64 images and image URLs.

The URL cases run the service with ``EDGE_IMAGE_URLS=true`` and a loopback image host that is
allowlisted; refusals (metadata address, loopback spellings, disabled) are checked end to end
against a listening socket that must see no connection.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from .support import encode, mnist_test_digits, running_server
from .test_image_url import image_host, untouched_listener

DIGITS, LABELS = mnist_test_digits(3)
PNG = encode(DIGITS[0])


@pytest.fixture(scope="module")
def photo_host() -> Iterator[int]:
    with image_host() as port:
        yield port


@pytest.fixture(scope="module")
def url_server() -> Iterator[str]:
    with running_server(EDGE_IMAGE_URLS="true", EDGE_IMAGE_URL_ALLOWED_HOSTS="127.0.0.1") as s:
        yield s.url


def test_base64_body_equals_the_upload(http: httpx.Client) -> None:
    upload = http.post("/predict", content=PNG).json()
    body = {"image_base64": base64.b64encode(PNG).decode(), "user_id": 17, "top_k": 5}
    answer = http.post("/predict", json=body)
    assert answer.status_code == 200
    assert answer.json()["class_index"] == upload["class_index"] == int(LABELS[0])
    assert len(answer.json()["top_k"]) == 5
    data_url = {"image_base64": "data:image/png;base64," + base64.b64encode(PNG).decode()}
    assert http.post("/models/mnist/predict", json=data_url).json()["class_index"] == int(LABELS[0])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "exactly one of"),
        ({"image_base64": "AAAA", "image_url": "http://x/"}, 400, "exactly one of"),
        ({"image_base64": "***"}, 400, "not valid base64"),
        ({"image_base64": base64.b64encode(b"hello").decode()}, 415, "not a recognised image"),
        ({"image_base64": 5}, 422, "string"),
        ({"image_base64": "AAAA", "top_k": 0}, 422, "greater than or equal to 1"),
        ({"image_url": "http://169.254.169.254/latest/meta-data/"}, 400, "EDGE_IMAGE_URLS=true"),
    ],
)
def test_bad_json_bodies(http: httpx.Client, body: dict, status: int, words: str) -> None:
    response = http.post("/predict", json=body)
    assert response.status_code == status
    assert words in str(response.json()["detail"])


def test_image_url_from_an_allowlisted_host(url_server: str, photo_host: int) -> None:
    # The photo host serves a real cat photo; the digit model classifies it (meaninglessly), and
    # the answer must equal the upload of the same bytes.
    from .test_image_url import CAT_PHOTO

    url = f"http://127.0.0.1:{photo_host}/cat.jpg"
    by_url = httpx.post(f"{url_server}/predict", json={"image_url": url, "user_id": 1}, timeout=30)
    assert by_url.status_code == 200, by_url.text
    upload = httpx.post(f"{url_server}/predict", content=CAT_PHOTO.read_bytes(), timeout=30).json()
    assert by_url.json()["top_k"] == upload["top_k"]


@pytest.mark.parametrize(
    # 127.0.0.1 itself is allowlisted here (in any spelling); these are other hosts.
    "host",
    ["localhost", "2130706434", "0x7f.2", "[::ffff:127.0.0.1]", "[::1]", "0", "169.254.169.254"],
)
def test_refused_urls_never_connect(url_server: str, host: str) -> None:
    with untouched_listener() as (port, connections):
        response = httpx.post(f"{url_server}/predict", json={"image_url": f"http://{host}:{port}/x.png"})
        assert response.status_code == 400
        assert connections() == 0


def test_redirect_to_a_refused_host_never_connects(url_server: str, photo_host: int) -> None:
    with untouched_listener() as (port, connections):
        target = f"http://localhost:{port}/x.png"
        url = f"http://127.0.0.1:{photo_host}/redirect?to={target}"
        response = httpx.post(f"{url_server}/predict", json={"image_url": url})
        assert response.status_code == 400 and "localhost" in response.json()["detail"]
        assert connections() == 0


@pytest.mark.parametrize(("path", "status"), [("/page.html", 415), ("/error", 502), ("/loop", 502)])
def test_upstream_failures(url_server: str, photo_host: int, path: str, status: int) -> None:
    response = httpx.post(f"{url_server}/predict", json={"image_url": f"http://127.0.0.1:{photo_host}{path}"})
    assert response.status_code == status
