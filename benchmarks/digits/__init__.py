"""Digits: accuracy and time of the digit preprocessing and of the number reader on MNIST digits
rendered as phone photos (``tests/harness/digit_photos.py``, ``digit_scenes.py``), the old
preprocessing kept for side-by-side runs, and the figures of docs/digits.md and
docs/digit-photos.md."""
