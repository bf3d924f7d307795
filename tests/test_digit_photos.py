"""Phone photos of handwritten digits, over real HTTP, against the committed digit model.

300 MNIST *test* digits rendered as photos by ``benchmarks/digit_photos.py`` (pens, paper tints,
lighting gradients and shadows, noise, blur, rotation up to 15 degrees, digit 3-40 % of the
frame, off-centre, JPEG 60-95; 4 of them 12 MP frames), posted to a real uvicorn server. Before
issue 10 the service scored 0.177 on this set, now 0.99 (old and new preprocessing and model,
``python -m benchmarks.digit_preprocessing``); nothing here was used to train or tune (the
preprocessing is tuned on photos rendered from MNIST *train* digits). Then 200 more test digits in
issue 18's scenes (``benchmarks/digit_scenes.py``): a sheet of paper on a desk, ruled and squared
paper, drawing-app screenshots.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tests.harness.digit_photos import render_photos
from tests.harness.digit_scenes import DESKS, SCENES, render_scenes

from .support import mnist_test_digits

COUNT = 300
TWELVE_MP = 4
SEED = 2026
# The bar (measured 0.993: models_onnx/mnist/report.md has the per-condition table); 7
# photos of slack for other CPUs' int8 kernels, and a real regression still fails.
MIN_ACCURACY = 0.97


# Issue 18's scenes (benchmarks/digit_scenes.py), from the next MNIST test digits: a sheet on a
# desk, ruled and squared paper, drawing-app screenshots, SCENE_COUNT / 4 of each.
SCENE_COUNT = 200
# Measured per scene (models_onnx/mnist/report.md): sheet on desk 0.18 before issue 18. The
# bound is each scene's measured accuracy less ~3 photos of 50 (other CPUs' int8 kernels).
MIN_SCENE = 0.86
# The whole set (photos and scenes), measured in the report; the bar.
MIN_ALL = 0.97


@pytest.fixture(scope="module")
def photos():
    digits, labels = mnist_test_digits(COUNT)
    return render_photos(digits, labels, SEED, twelve_mp=TWELVE_MP)


@pytest.fixture(scope="module")
def scenes():
    digits, labels = mnist_test_digits(COUNT + SCENE_COUNT)
    return render_scenes(digits[COUNT:], labels[COUNT:], SEED)


def _hits(http, photos) -> list[bool]:
    hits = []
    for photo in photos:
        kind = "image/png" if photo.jpeg.startswith(b"\x89PNG") else "image/jpeg"
        response = http.post("/predict", files={"file": ("photo", photo.jpeg, kind)})
        assert response.status_code == 200, response.text
        hits.append(response.json()["class_index"] == photo.label)
    return hits


def test_scene_set_covers_the_conditions(scenes):
    seen = collections.defaultdict(set)
    for photo in scenes:
        for key, value in photo.conditions.items():
            seen[key].add(value)
    assert seen["scene"] == set(SCENES)
    assert seen["desk"] == set(DESKS)
    assert seen["sheet cover"] == {"50-70 %", "70-90 %"}


def test_scenes_over_http(http, photos, scenes):
    """Sheets on desks, ruled and squared paper, drawing apps: each scene, and the whole set."""
    scene_hits = _hits(http, scenes)
    by_scene = collections.defaultdict(list)
    for photo, hit in zip(scenes, scene_hits, strict=True):
        by_scene[photo.conditions["scene"]].append(hit)
    accuracy = {scene: float(np.mean(hits)) for scene, hits in by_scene.items()}
    assert min(accuracy.values()) >= MIN_SCENE, accuracy
    everything = _hits(http, photos) + scene_hits
    assert np.mean(everything) >= MIN_ALL, (np.mean(everything), accuracy)


def test_photo_set_is_deterministic():
    digits, labels = mnist_test_digits(3)
    first = render_photos(digits, labels, SEED)
    second = render_photos(digits, labels, SEED)
    assert [p.jpeg for p in first] == [p.jpeg for p in second]
    assert render_photos(digits, labels, SEED + 1)[0].jpeg != first[0].jpeg


def test_photo_set_covers_the_conditions(photos):
    seen = collections.defaultdict(set)
    for photo in photos:
        for key, value in photo.conditions.items():
            seen[key].add(value)
    assert seen["pen"] == {"black", "blue", "red", "pencil"}
    assert seen["lighting"] == {"even", "gradient", "vignette", "shadow"}
    assert seen["digit size"] == {"3-6 %", "6-15 %", "15-40 %"}
    assert "12 MP" in seen["frame"] and sum(p.size == (4032, 3024) for p in photos) == TWELVE_MP


def test_digit_photos_over_http(http, photos):
    correct = collections.Counter()
    total = collections.Counter()
    for photo in photos:
        response = http.post("/predict", files={"file": ("photo.jpg", photo.jpeg, "image/jpeg")})
        assert response.status_code == 200, response.text
        hit = response.json()["class_index"] == photo.label
        for key, value in photo.conditions.items():
            correct[(key, value)] += hit
            total[(key, value)] += 1
        correct["all"] += hit
        total["all"] += 1
    accuracy = correct["all"] / total["all"]
    worst = sorted((correct[k] / total[k], k) for k in total if k != "all")[:5]
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.3f}; weakest conditions: {worst}"
    # No condition collapses (each has >= 10 photos at COUNT = 300, except the 12 MP frames).
    for key in total:
        if total[key] >= 10:
            assert correct[key] / total[key] >= 0.85, (key, correct[key], total[key])


def test_twelve_megapixel_photos_over_http(http, photos):
    big = [p for p in photos if p.size == (4032, 3024)]
    answers = [
        http.post("/predict", files={"file": ("photo.jpg", p.jpeg, "image/jpeg")}).json()["class_index"]
        for p in big
    ]
    assert np.mean(np.array(answers) == np.array([p.label for p in big])) >= 0.75
