"""Images: decoding uploads (formats, pixel limits, DCT-scaled JPEG, EXIF orientation, HEIC/AVIF),
fetching image URLs, the process's image memory (``allocator``), and each model kind's
preprocessing (``preprocessing``). No web framework.
"""
