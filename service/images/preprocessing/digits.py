"""MNIST-style normalisation of a photo or drawing of one handwritten digit.

MNIST digits are light ink on black, size-normalised to fit a 20x20 box (aspect kept,
anti-aliased) and placed in a 28x28 field so that the centre of mass of the ink sits at the
centre (LeCun, Cortes, Burges, http://yann.lecun.com/exdb/mnist/). Real uploads are dark ink on
paper, any size, off-centre, often with transparency, and phone photos add uneven light,
shadows, coloured pens, tinted paper, noise and specks; this module finds the digit the way a
person would and brings it to that form. Applied to an MNIST test digit it is (nearly) the
identity.

Steps (numpy + Pillow only; the serving path has no OpenCV or SciPy):

1. Sample the image down to at most ``WORKING_SIDE`` pixels on its longer side with Pillow's
   C code (nearest-neighbour to twice that, then a 2x2 mean), so a 12 MP photo costs as much
   as a 0.1 MP one.
2. A sheet of paper lying on a darker or differently coloured surround (a desk) is looked for
   first (``.sheet``): when found, it is the paper and ink is looked for inside it only.
   Otherwise polarity: paper is the majority of pixels; light-on-dark images are inverted so
   ink is always darker than its background.
3. Background: the paper's illumination is estimated per colour channel at a large scale (a
   high percentile per block of ~1/24 of the image; blocks covered by thick strokes are filled
   from a 5x5-block closing, on a grid continued past the frame by odd reflection) and divided
   out, so gradients, vignettes and soft shadows are not ink.
4. Ink strength = the largest relative darkening over the colour channels, so a red or blue pen
   on paper is as strong as black (luminance alone loses up to half a red pen's contrast).
5. Ink vs paper: a threshold above the paper's own noise (median + 5 robust sigmas) and above a
   fraction of the strongest ink; 8-connected components of the ink, long straight lines
   (rules, margin lines, squares, table edges: ``.lines``) taken out; the digit is the heaviest
   component (components touching the frame, like edge shadows, count less) plus every
   non-tiny component near it, so two-stroke digits (4, 5, 7) stay whole and specks go.
6. The digit's box is cut from the full-resolution image at about ``FINE_SIDE`` pixels, and
   its ink strength there, ramped from the threshold to the stroke core, is the intensity fed
   to MNIST's normalisation: thin and thick pens both give MNIST-like strokes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service.images.preprocessing.color import RESAMPLING, gray_float, has_alpha
from service.images.preprocessing.components import Components, label
from service.images.preprocessing.lines import line_pixels
from service.images.preprocessing.sheet import find_sheet
from service.images.preprocessing.workspace import Workspace, WorkspacePool
from service.manifest import MnistDigitPreprocessing

# Longer side, in pixels, of the image the digit is located in; also the smallest side the
# service's JPEG DCT-scaled decode keeps (``preprocessing.decode_min_side``): measured on the
# phone-photo set, 0.957 decoded so vs 0.960 fully decoded (benchmarks/digit_preprocessing.py).
# A digit 3 % of a frame's shorter side is still ~8 px tall here; larger costs more time per
# 12 MP photo (budget 5 ms, benchmarks/digit_preprocessing.py).
WORKING_SIDE = 384
# The digit is re-read from the full image at about this many pixels on its longer side
# (3x the 20 px box, so the final anti-aliased resize has detail to average).
FINE_SIDE = 64
# The paper's illumination is estimated on a grid of this many blocks along the longer side.
BLOCKS = 24
# Below this contrast (ink vs paper, relative) the image is treated as blank.
MIN_CONTRAST = 0.1
# Ink fainter than this fraction of the strongest is paper texture (the anti-aliased edges of
# clean drawings are kept down to it).
NOISE_FLOOR = 0.1
# Ink weaker than this fraction of the strongest is surely not a stroke (shading, noise): the
# threshold for finding the digit.
INK_FRACTION = 0.3
# A component joins the digit if it is at least this fraction of the main stroke's pixels and
# its box is within this fraction of the digit's size from the digit's box.
MIN_PART = 0.04
MAX_GAP = 0.35
# A block darker than its closing by more than this (relative) is covered by ink and takes the
# closing's level; others keep their own (the closing overestimates curved light fall-off).
FILL_DROP = 0.08
# A component longer than this fraction of the frame's height or width may hold a long straight
# line (a rule, a margin line, a sheet or table edge: see .lines); no digit is that long.
LINE_LENGTH = 0.45
# So may one longer than this fraction and this many times longer than it is wide.
LINE_PIECE = 0.1
# Lines are traced in ink above this fraction of the digit's threshold.
LINE_INK = 0.5
# Line pixels more than this many times their line's mean strength are a stroke crossing it.
LINE_DARKER = 2.0
# Gaps a removed rule leaves in the digit's strokes, up to 2x this many pixels, are closed.
LINE_GAP = 3
LINE_ELONGATION = 4
# Components touching the frame (edge shadows, the table) weigh this much when picking the digit.
BORDER_WEIGHT = 0.25
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Working-size buffers of the coarse pass, reused across calls (see .workspace): two kept,
# one per inference worker of a 2-vCPU host; more concurrent calls borrow fresh ones.
_WORKSPACES = WorkspacePool(keep=2)
# MNIST's mean centre of mass is at pixel index (14.0, 14.0) in 28x28 (measured on the test
# set: 13.99, 14.01), i.e. canvas // 2 in index coordinates, reached by integer shifts.


def mnist_digit_tensor(image: Image.Image, spec: MnistDigitPreprocessing) -> np.ndarray:
    """Normalise one digit image.

    Args:
        image: any Pillow image (any size and mode; alpha and 16-bit supported).
        spec: box and canvas sizes and the resampling filter.

    Returns:
        float32 array (canvas, canvas, 1) in [0, 1], light ink on black. A blank image (no
        contrast) gives all zeros.
    """
    return ink_canvas(digit_ink(image), spec)


def ink_canvas(ink: np.ndarray, spec: MnistDigitPreprocessing) -> np.ndarray:
    """MNIST's normalisation of one digit's ink intensity (float32 (h, w) in [0, 1], light
    ink): its box fitted into ``spec.box`` (aspect kept), centred by mass on a
    ``spec.canvas`` square. float32 (canvas, canvas, 1); all zeros for no ink."""
    canvas = np.zeros((spec.canvas, spec.canvas), dtype=np.float32)
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return canvas[..., np.newaxis]
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    digit = _fit_box(crop, spec.box, RESAMPLING[spec.resample])
    _paste_centred_by_mass(canvas, digit)
    return canvas[..., np.newaxis]


def digit_ink(image: Image.Image) -> np.ndarray:
    """The located digit's ink intensity: float32 (h, w) in [0, 1], 0 off the digit.

    ``h, w`` are those of the region around the digit at about ``FINE_SIDE`` px (or the
    image's own resolution if smaller). All zeros when the image is blank.
    """
    width, height = image.size
    coarse_size = _fit_within((width, height), WORKING_SIDE)
    flip = _transparent_ink_is_dark(image) if has_alpha(image) else None
    with _WORKSPACES.borrow() as workspace:
        coarse = _sample(image, (0, 0, width, height), coarse_size, flip, workspace=workspace)
        located = _locate(coarse, workspace)
    if located is None:
        return np.zeros((1, 1), dtype=np.float32)
    paper, region, grown = located
    return fine_ink(image, paper, region, grown, coarse_size, flip)


def fine_ink(
    image: Image.Image,
    paper: _Paper,
    region: tuple[int, int, int, int],
    grown: np.ndarray,
    coarse_size: tuple[int, int],
    flip: bool | None,
) -> np.ndarray:
    """One digit's ink intensity read from the full image: float32 (h, w) in [0, 1] at about
    ``FINE_SIDE`` px, 0 off the digit (all zeros (1, 1) when nothing is above the threshold).

    Args:
        paper: the paper found in the coarse image.
        region: the digit's box (left, top, right, bottom) in coarse pixels.
        grown: bool (region h, region w), the digit's coarse ink grown by a pixel; ink in the
            region outside it (specks, a neighbouring digit) is dropped.
        coarse_size: (width, height) of the coarse image.
        flip: how transparency is flattened (``_transparent_ink_is_dark``), ``None`` if none.
    """
    left, top, right, bottom = region
    width, height = image.size
    box = source_box(region, coarse_size, image.size)
    fine_size = _fit_within((box[2] - box[0], box[3] - box[1]), FINE_SIDE)
    fine = _sample(image, box, fine_size, flip, exact=True)
    fine_strength = paper.strength(fine, (left, top, right, bottom))
    # Keep only the chosen components (grown by one coarse pixel): specks inside the box go.
    mask = np.asarray(
        Image.fromarray(grown.astype(np.uint8) * 255).resize(fine_size, Image.Resampling.NEAREST)
    )
    fine_strength[mask == 0] = 0.0
    core = fine_strength[fine_strength > paper.threshold]
    if core.size == 0:
        return np.zeros((1, 1), dtype=np.float32)
    # Stroke intensity, not a mask: relative to the stroke core (the 95th percentile of the
    # ink: MNIST's cores are saturated), zero below the paper's noise floor. A clean MNIST
    # digit comes through unchanged.
    high = max(_quantile(core, 0.95), paper.floor + 1e-3)
    intensity = np.clip(fine_strength / high, 0.0, 1.0)
    intensity[fine_strength < paper.floor] = 0.0
    return intensity


def source_box(
    region: tuple[int, int, int, int], coarse_size: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A coarse-pixel box (left, top, right, bottom) in the source image's pixels (``size`` =
    (width, height)), rounded outwards and clamped to the image."""
    left, top, right, bottom = region
    width, height = size
    sx, sy = width / coarse_size[0], height / coarse_size[1]
    # Clamped: ``right * sx`` can round a hair above the width (e.g. 384 * (1009 / 384)).
    return (
        int(np.floor(left * sx)),
        int(np.floor(top * sy)),
        min(int(np.ceil(right * sx)), width),
        min(int(np.ceil(bottom * sy)), height),
    )


def _locate(
    coarse: _Planes, workspace: Workspace
) -> tuple[_Paper, tuple[int, int, int, int], np.ndarray] | None:
    """Find the digit in the coarse image: the paper; the box (left, top, right, bottom) of the
    kept ink with one pixel of margin for the strokes' faint edges, in coarse pixels; and the
    kept ink in that box grown by one pixel, bool (box h, box w), a new array (the rest is on
    ``workspace``). ``None`` when the image is blank or has no ink."""
    estimate = _Paper.estimate(coarse, workspace)
    if estimate is None:
        return None
    paper, strength = estimate
    keep = _digit_mask(strength, paper.threshold, workspace)
    if keep is None:
        return None
    height, width = keep.shape
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    top, bottom = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, height)
    left, right = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, width)
    # The box has a pixel of margin around the kept ink, so dilating inside it is exact.
    return paper, (left, top, right, bottom), _dilate(keep[top:bottom, left:right])


@dataclass(frozen=True)
class _Paper:
    """The paper under the ink: its illumination per colour channel, and the ink threshold.

    ``background`` is one float32 (grid_h, grid_w) grid per colour channel, one value per
    ``block`` x ``block`` cell of the coarse image (after inversion: ink darker than paper), at
    least 0.02 (a black frame is not divided by zero); ``threshold`` (what is
    surely ink), ``floor`` (the paper's noise level), ``noise`` (the smoothed strength's
    noise bound, the threshold's lower limit) and ``peak`` (the strongest smoothed ink) are
    on the ink-strength scale (relative darkening, 0-1).
    """

    invert: bool
    background: tuple[np.ndarray, ...]
    block: int
    coarse_size: tuple[int, int]
    threshold: float
    floor: float
    noise: float = 0.0
    peak: float = 1.0

    @staticmethod
    def estimate(
        coarse: _Planes, workspace: Workspace, sheet_edge_quantile: float = 0.5
    ) -> tuple[_Paper, np.ndarray] | None:
        """From the coarse image's planes: the paper and the coarse image's ink strength,
        float32 (h, w) on ``workspace``; ``None`` when blank (no contrast).
        ``sheet_edge_quantile`` goes to ``find_sheet`` (0.5 for one digit)."""
        height, width = coarse.shape
        step = _subsample_step(height * width)
        small = coarse.gray(step)
        # A sheet on a desk: ink is looked for inside the sheet only, and the sheet is paper.
        # (on a grid twice as sparse again: ~2,000 samples are plenty for a sheet's outline)
        sheet_step = 2 * step
        inside = find_sheet(
            coarse.darkest(sheet_step) if len(coarse.planes) > 1 else small[::2, ::2], sheet_edge_quantile
        )
        invert = False if inside is not None else _light_ink_on_dark(coarse, small)
        if invert:
            coarse = coarse.inverted()
        block = max(4, 2 * int(round(max(height, width) / BLOCKS / 2)))  # even: see _block_background
        background = _block_background(coarse, block, workspace)
        paper = _Paper(invert, background, block, (width, height), 1.0, 0.0)
        raw = paper.strength(
            coarse, (0.0, 0.0, float(width), float(height)), inverted=True, workspace=workspace
        )
        if inside is not None:
            # The subsample grid's mask, each cell covering step x step coarse pixels.
            grid = np.repeat(np.repeat(inside, sheet_step, axis=0), sheet_step, axis=1)[:height, :width]
            np.multiply(raw, grid, out=raw)
            inside = grid[::step, ::step]
        # Stroke intensities are read unsmoothed, above the raw noise (measured first: the 3x3
        # mean below reuses the raw buffer).
        raw_median, raw_spread = _median_spread(raw, inside)
        raw_peak = float(raw.max())
        # The digit is found on a 3x3 mean: noise drops 3x, grainy pencil strokes join up.
        strength = _box3(raw, workspace.array("scratch", raw.shape))
        median, spread = _median_spread(strength, inside)
        peak = float(strength.max())
        if peak - median < MIN_CONTRAST:
            return None
        noise = median + 5.0 * spread + 0.03
        threshold = max(noise, INK_FRACTION * peak)
        floor = min(max(raw_median + 3.0 * raw_spread + 0.02, NOISE_FLOOR * raw_peak), threshold)
        return _Paper(invert, background, block, (width, height), threshold, floor, noise, peak), strength

    def strength(
        self,
        pixels: _Planes,
        region: tuple[float, float, float, float],
        inverted: bool = False,
        workspace: Workspace | None = None,
    ) -> np.ndarray:
        """Ink strength, float32 (h, w) in [0, 1], of ``pixels`` covering ``region`` (left, top,
        right, bottom) in coarse-image pixel coordinates: 1 - the smallest ratio over the
        channels of pixel to paper illumination. On ``workspace`` when given, else new."""
        if self.invert and not inverted:
            pixels = pixels.inverted()
        height, width = pixels.shape
        left, top, right, bottom = region
        grid_h, grid_w = self.background[0].shape
        # The illumination at every pixel is the grid's bilinear interpolation, a product of
        # two small matrices (rows x grid x columns): no image-sized temporaries but the two
        # buffers below (each fresh image-sized array is page faults in a worker thread).
        rows = _bilinear_weights(grid_h, top / self.block, bottom / self.block, height)
        columns = _bilinear_weights(grid_w, left / self.block, right / self.block, width).T
        scratch = workspace or Workspace()
        light = scratch.array("scratch", (height, width))
        darkest = scratch.array("strength", (height, width))
        for channel, (plane, light_grid) in enumerate(zip(pixels.planes, self.background, strict=True)):
            np.matmul(rows @ (light_grid * np.float32(pixels.full)), columns, out=light)
            if channel == 0:
                np.divide(plane, light, out=darkest)
            else:
                np.divide(plane, light, out=light)
                np.minimum(darkest, light, out=darkest)
        np.subtract(np.float32(1.0), darkest, out=darkest)
        return np.maximum(darkest, np.float32(0.0), out=darkest)


@functools.lru_cache(maxsize=64)
def _bilinear_weights(size: int, start: float, stop: float, out_size: int) -> np.ndarray:
    """Pillow's BILINEAR resampling of ``[start, stop)`` of an axis of ``size`` samples to
    ``out_size`` samples, as a read-only float32 (out_size, size) matrix (cached: photos from
    one camera share their sizes, and so their coarse grids).

    The same coefficients as Pillow's ``precompute_coeffs`` (``src/libImaging/Resample.c``): a
    triangle filter widened by the scale when downsampling, centred on each output sample
    (half-pixel centres), cut at the edges and normalised to sum 1.
    """
    scale = (stop - start) / out_size
    support = max(scale, 1.0)
    centres = start + (np.arange(out_size) + 0.5) * scale
    distance = (np.arange(size) + 0.5)[np.newaxis, :] - centres[:, np.newaxis]
    weights = np.maximum(1.0 - np.abs(distance) / support, 0.0)
    totals = weights.sum(axis=1, keepdims=True)
    matrix = np.divide(weights, totals, out=weights, where=totals > 0).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def _light_ink_on_dark(coarse: _Planes, small: np.ndarray) -> bool:
    """Whether the image is light ink on a dark background (MNIST itself, a chalkboard).

    The background is the majority of pixels. Paper under any light a phone can expose for is
    brighter than 0.45 (even grey paper in a shadow), and drawings of light ink are on nearly
    black backgrounds, so the median decides; in between, the ink decides: it is the side of
    the strongest departures from the local (per-block median) level.
    """
    # The median is read on ``small``, the luminance of every ``_subsample_step``-th pixel;
    # the full luminance is needed only in between.
    median = _quantile(small, 0.5)
    if median < 0.25 or median > 0.45:
        return median < 0.25
    gray = coarse.gray()
    height, width = gray.shape
    block = max(4, int(round(max(height, width) / BLOCKS)))
    local = _block_level(gray[..., np.newaxis], block, 0.5)[..., 0]
    level = Image.fromarray(local, "F").resize(
        (width, height), Image.Resampling.BILINEAR, box=(0, 0, width / block, height / block)
    )
    departure = (gray - np.asarray(level)).ravel()
    if departure.size < 2:  # one pixel: no ink to compare with, the median's side decides
        return median < 0.35
    k = max(1, min(max(5, departure.size // 2000), departure.size // 2))
    darkest = -np.partition(departure, k)[:k].mean()
    brightest = np.partition(departure, departure.size - k)[-k:].mean()
    return bool(brightest > darkest)


def _median_spread(values: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 x median absolute deviation) of a
    subsample of ``values``; with ``where`` (bool, the subsample's shape), of its True cells."""
    sample = _subsample(values)
    if where is not None:
        sample = sample[where]
    median = _quantile(sample, 0.5)
    return median, 1.4826 * _quantile(np.abs(sample - np.float32(median)), 0.5)


def _quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, numpy's default "linear" method (Hyndman & Fan
    type 7, as ``np.quantile``), by ``np.partition``.

    Why not ``np.median`` / ``np.percentile``: their first call imports ``numpy.ma`` (~30 ms
    of every Lambda cold start, ``python -X importtime``), and they add a pass or two. The
    upper neighbour is the smallest value above the partition point: one selection, not two
    (~80 vs ~135 us for 12,288 float32 on fresh data; numpy selects once per kth).
    """
    flat = values.ravel()
    position = q * (flat.size - 1)
    low = int(position)
    parted = np.partition(flat, low)
    lower = float(parted[low])
    upper = float(parted[low + 1 :].min()) if low + 1 < flat.size else lower
    return lower + (upper - lower) * (position - low)


def _box3(values: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """3x3 mean (edges replicated) of float32 (h, w) ``values``, computed in place: ``values``
    is overwritten and returned; ``sums`` (same shape) is the one temporary."""
    _sum3(values, sums, axis=0)
    _sum3(sums, values, axis=1)
    values *= np.float32(1 / 9)
    return values


def _sum3(source: np.ndarray, out: np.ndarray, axis: int) -> None:
    """``out`` = the sum of each element of ``source`` and its two neighbours along ``axis``
    (edges replicated), in the order (previous + own) + next."""

    def part(array: np.ndarray, start: int | None, stop: int | None) -> np.ndarray:
        return array[(slice(None),) * axis + (slice(start, stop),)]

    if source.shape[axis] == 1:
        np.multiply(source, np.float32(3.0), out=out)
        return
    inner = part(out, 1, -1)
    np.add(part(source, None, -2), part(source, 1, -1), out=inner)
    inner += part(source, 2, None)
    first, last = part(out, None, 1), part(out, -1, None)
    np.add(part(source, None, 1), part(source, None, 1), out=first)
    first += part(source, 1, 2)
    np.add(part(source, -2, -1), part(source, -1, None), out=last)
    last += part(source, -1, None)


def _subsample(values: np.ndarray) -> np.ndarray:
    """Every k-th pixel in both directions, k chosen to leave ~8,000: enough for percentiles."""
    step = _subsample_step(values.size)
    return values[::step, ::step]


def _subsample_step(size: int) -> int:
    return max(1, int(np.sqrt(size / 8000)))


def _block_background(coarse: _Planes, block: int, workspace: Workspace) -> tuple[np.ndarray, ...]:
    """Paper illumination per block: the 75th percentile of each block (ink is the darker
    minority), and where that is more than ``FILL_DROP`` below a 5x5-block closing (max, then
    min) of the grid, the closing: it fills up to 4 blocks that thick strokes cover, and keeps
    the steps of shadow edges where they are; other blocks keep their own level, as a closing
    overestimates light that falls off along a curve (a vignette's corners).

    The grid is first extended by 4 blocks on each side by odd reflection (continuing its
    slope): a closing cut off at the frame sees only the brighter, inner side there, so light
    falling off towards the edges (a vignette) was estimated 2 blocks too bright and read as
    ink bands along the frame."""
    # Every other pixel is plenty for a percentile of a block (and 4x cheaper).
    halves = [plane[::2, ::2] for plane in coarse.planes]
    sparse = workspace.array("sparse", (*halves[0].shape, len(halves)), halves[0].dtype.type)
    np.stack(halves, axis=2, out=sparse)
    level = _block_level(sparse, block // 2, 0.75, workspace) * np.float32(1.0 / coarse.full)
    pad = 4
    if min(level.shape[:2]) > pad:
        extended = _pad_grid(level, pad, odd_reflect=True)
    elif min(level.shape[:2]) > 1:  # tiny images: numpy reflects repeatedly
        extended = np.pad(level, ((pad, pad), (pad, pad), (0, 0)), mode="reflect", reflect_type="odd")
    else:
        extended = _pad_grid(level, pad)
    closed = _grid_filter(_grid_filter(extended, np.maximum), np.minimum)[pad:-pad, pad:-pad]
    closed = np.where(level < closed * np.float32(1.0 - FILL_DROP), closed, level)
    closed = np.maximum(closed, np.float32(0.02))
    return tuple(np.ascontiguousarray(closed[..., c], dtype=np.float32) for c in range(closed.shape[2]))


def _block_level(
    pixels: np.ndarray, block: int, quantile: float, workspace: Workspace | None = None
) -> np.ndarray:
    """``quantile`` of each ``block`` x ``block`` cell of (h, w, c) pixels: (grid_h, grid_w, c)
    float32 (on the pixels' scale); the last row and column of cells are padded by repeating
    the edge. The cells are gathered on ``workspace`` when given."""
    height, width, channels = pixels.shape
    grid_h, grid_w = -(-height // block), -(-width // block)
    padded = pixels
    if (grid_h * block, grid_w * block) != (height, width):
        padded = np.pad(
            pixels, ((0, grid_h * block - height), (0, grid_w * block - width), (0, 0)), mode="edge"
        )
    blocks = padded.reshape(grid_h, block, grid_w, block, channels).transpose(0, 2, 4, 1, 3)
    # float32 before the partition: numpy's SIMD selection (x86-simd-sort, AVX2 and AVX-512)
    # covers 32-bit types, while uint8 rows are selected one by one (~4x slower here).
    cells = (workspace or Workspace()).array("scratch", blocks.shape)
    np.copyto(cells, blocks)
    cells = cells.reshape(grid_h, grid_w, channels, block * block)
    kth = min(int(block * block * quantile), block * block - 1)
    cells.partition(kth, axis=3)
    return np.ascontiguousarray(cells[..., kth])


def _pad_grid(grid: np.ndarray, pad: int, odd_reflect: bool = False) -> np.ndarray:
    """``grid`` (h, w, c) padded by ``pad`` cells on both sides of its first two axes: edge
    values repeated, or with ``odd_reflect`` (sides larger than ``pad``) reflected about the
    edge and mirrored in value, ``2 * edge - inner`` (continuing the slope). The same values
    as ``np.pad`` with ``mode="edge"`` / ``mode="reflect", reflect_type="odd"``, by index
    arrays: ``np.pad``'s Python bookkeeping cost ~0.1 ms per call on these small grids."""
    out = grid
    for axis in (0, 1):
        size = out.shape[axis]
        index = np.arange(-pad, size + pad)
        if odd_reflect:
            if size <= pad:
                raise ValueError(f"odd reflection needs more than {pad} cells, not {size}")
            mirrored = np.abs(index)
            mirrored = np.where(mirrored > size - 1, 2 * (size - 1) - mirrored, mirrored)
            edge = np.take(out, np.clip(index, 0, size - 1), axis=axis)
            out = 2 * edge - np.take(out, mirrored, axis=axis)
        else:
            out = np.take(out, np.clip(index, 0, size - 1), axis=axis)
    return out


def _grid_filter(grid: np.ndarray, reduce) -> np.ndarray:
    """5x5 max or min filter over the first two axes (edges replicated): 5 taps along the
    rows, then 5 along the columns (a max or min over a rectangle is separable)."""
    padded = _pad_grid(grid, 2)
    height, width = grid.shape[:2]
    rows = padded[:height].copy()
    for dy in range(1, 5):
        reduce(rows, padded[dy : dy + height], out=rows)
    out = rows[:, :width].copy()
    for dx in range(1, 5):
        reduce(out, rows[:, dx : dx + width], out=out)
    return out


@dataclass(frozen=True)
class InkParts:
    """The ink of a coarse image as 8-connected components, long straight lines taken out.

    ``ink`` is the bool (h, w) mask (on a workspace buffer); ``parts`` its components;
    ``top``, ``bottom``, ``left``, ``right`` (inclusive), ``area`` (pixels) and ``mass`` (summed
    ink strength) are int64 / float64 (count,) per component; ``removed`` holds the flat
    indices of ink taken out as lines (empty when none).
    """

    ink: np.ndarray
    parts: Components
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    area: np.ndarray
    mass: np.ndarray
    removed: np.ndarray

    def score(self) -> np.ndarray:
        """How digit-like each component is: heavy and dark (residues of shadow edges can be as
        heavy as a digit, never as dark); those touching the frame weigh less."""
        height, width = self.ink.shape
        at_border = (
            (self.top == 0) | (self.left == 0) | (self.bottom == height - 1) | (self.right == width - 1)
        )
        return self.mass * (self.mass / self.area) * np.where(at_border, BORDER_WEIGHT, 1.0)

    def mask_of(self, kept: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """bool (h, w): the pixels of the components where ``kept`` (bool (count,)), with the
        pixels a removed line took from their strokes given back (``LINE_GAP``)."""
        mask = np.zeros(self.ink.shape, dtype=bool) if out is None else out
        flat = mask.reshape(-1)
        flat.fill(False)
        flat[self.parts.pixels[kept[self.parts.labels]]] = True
        if self.removed.size:
            # Where a rule crossed the digit, its strokes lost the rule's pixels: those inside
            # the digit's outline (a closing of its strokes) are given back.
            closed = _closing(mask, LINE_GAP)
            flat[self.removed[closed.ravel()[self.removed]]] = True
        return mask


def ink_parts(strength: np.ndarray, threshold: float, workspace: Workspace) -> InkParts | None:
    """The ink above ``threshold`` in ``strength`` (float32 (h, w)) as components, long
    straight lines (``.lines``) taken out; ``None`` when there is no ink."""
    ink = np.greater(strength, threshold, out=workspace.array("ink", strength.shape, np.bool_))
    parts = label(ink)
    if parts.count == 0:
        return None
    height, width = ink.shape
    rows, cols = np.divmod(parts.pixels, width)
    removed = np.zeros(0, dtype=np.int64)
    top, bottom, left, right = _boxes(parts, rows, cols, (height, width))
    spans = np.stack([bottom - top + 1, right - left + 1], axis=1)
    # Pieces of lines: long, or long-ish and thin (a rule broken by noise or by a shadow).
    reach = (spans / np.array([height, width])).max(axis=1)
    thin = spans.max(axis=1) >= LINE_ELONGATION * spans.min(axis=1)
    long = (reach >= LINE_LENGTH) | ((reach >= LINE_PIECE) & thin)
    if long.any():
        # Rules, margin lines, sheet and table edges: taken out, and the rest labelled again.
        # They are looked for in fainter ink than the digit's: a thin rule is often only
        # pieces above the digit's threshold.
        faint = np.flatnonzero(strength > LINE_INK * threshold)
        line = line_pixels(*np.divmod(faint, width), (height, width))
        on_line = line >= 0
        # Only ink about as dark as its line goes: a pen's stroke across a rule is darker.
        values = strength.ravel()[faint]
        numbers = line[on_line]
        level = np.zeros(faint.size)
        if numbers.size:
            sums = np.bincount(numbers, weights=values[on_line])
            level[on_line] = (sums / np.maximum(np.bincount(numbers), 1))[numbers]
        removed = faint[on_line & (values > threshold) & (values <= LINE_DARKER * level)]
        if removed.size:
            ink.ravel()[removed] = False
            joined = _joined_across_gaps(ink, LINE_GAP)
            if joined.count == 0:
                # Nothing but the line: it is what was drawn (a 1 from edge to edge, a bar).
                ink.ravel()[removed] = True
                removed = removed[:0]
            else:
                parts = joined
            rows, cols = np.divmod(parts.pixels, width)
            top, bottom, left, right = _boxes(parts, rows, cols, (height, width))
    area = np.bincount(parts.labels, minlength=parts.count)
    mass = np.bincount(parts.labels, weights=strength.ravel()[parts.pixels], minlength=parts.count)
    return InkParts(ink, parts, top, bottom, left, right, area, mass, removed)


def _digit_mask(strength: np.ndarray, threshold: float, workspace: Workspace) -> np.ndarray | None:
    """Boolean mask of the digit's components (see the module docstring), or ``None``."""
    found = ink_parts(strength, threshold, workspace)
    if found is None:
        return None
    top, bottom, left, right, area = found.top, found.bottom, found.left, found.right, found.area
    n = found.parts.count
    main = int(np.argmax(found.score()))
    kept = np.zeros(n, dtype=bool)
    kept[main] = True
    box = [top[main], left[main], bottom[main], right[main]]
    candidates = np.nonzero(area >= max(2, MIN_PART * area[main]))[0]
    changed = True
    while changed:
        changed = False
        size = max(box[2] - box[0], box[3] - box[1]) + 1
        for c in candidates:
            if kept[c]:
                continue
            gap_y = max(box[0] - bottom[c], top[c] - box[2], 0)
            gap_x = max(box[1] - right[c], left[c] - box[3], 0)
            if max(gap_x, gap_y) <= MAX_GAP * size:
                kept[c] = True
                box = [
                    min(box[0], top[c]),
                    min(box[1], left[c]),
                    max(box[2], bottom[c]),
                    max(box[3], right[c]),
                ]
                changed = True
    # The ink mask is not needed past this point: its buffer is reused.
    return found.mask_of(kept, out=found.ink)


def _joined_across_gaps(ink: np.ndarray, radius: int) -> Components:
    """Components of ``ink`` where pieces less than 2 ``radius`` pixels apart are one: the
    components of its closing, holding ``ink``'s own pixels only. A digit crossed by rules
    that were taken out is in pieces split by the rules' width; it stays one component."""
    pixels = np.flatnonzero(ink)
    if pixels.size == 0:
        return Components(pixels, pixels.copy(), 0)
    joined = label(_closing(ink, radius))
    lookup = np.empty(ink.size, dtype=np.int64)
    lookup[joined.pixels] = joined.labels
    present, labels = np.unique(lookup[pixels], return_inverse=True)
    return Components(pixels, labels.reshape(-1), int(present.size))


def _closing(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing by a (2 radius + 1) square, computed in the mask's True box (+ radius)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    out = np.zeros_like(mask)
    if rows.size == 0:
        return out
    top, left = max(int(rows[0]) - radius, 0), max(int(cols[0]) - radius, 0)
    bottom, right = int(rows[-1]) + radius + 1, int(cols[-1]) + radius + 1
    box = np.pad(mask[top:bottom, left:right], radius)
    grown = box.copy()
    for _ in range(radius):
        grown = _dilate(grown)
    shrunk = ~grown
    for _ in range(radius):
        shrunk = _dilate(shrunk)
    inner = ~shrunk[radius:-radius, radius:-radius]
    out[top:bottom, left:right] = inner[: out[top:bottom].shape[0], : out[:, left:right].shape[1]]
    return out


def _boxes(
    parts: Components, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each component's top, bottom, left and right pixel (inclusive): int64 (count,) each."""
    height, width = shape
    n = parts.count
    top = np.full(n, height)
    np.minimum.at(top, parts.labels, rows)
    bottom = np.zeros(n, dtype=np.int64)
    np.maximum.at(bottom, parts.labels, rows)
    left = np.full(n, width)
    np.minimum.at(left, parts.labels, cols)
    right = np.zeros(n, dtype=np.int64)
    np.maximum.at(right, parts.labels, cols)
    return top, bottom, left, right


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def _fit_within(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled down (never up) so its longer side is at most ``side``."""
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _sample(
    image: Image.Image,
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    dark_ink: bool | None,
    exact: bool = False,
    workspace: Workspace | None = None,
) -> _Planes:
    """``box`` of ``image`` at ``size``, as colour planes (1 or 3); 8-bit planes on
    ``workspace`` when given.

    Downsampling averages 2x2 (or more) source pixels in Pillow's C code, and its cost does
    not grow with the image: from 4x ``size`` up, nearest-neighbour to twice ``size`` (Pillow
    reads only those pixels) and a 2x2 mean; from 2x, a 2x2 mean of the box (``reduce``), then
    nearest-neighbour, or with ``exact`` (the digit's own pixels) an area-weighted box filter;
    below 2x, a box filter. 8-bit grey and RGB stay uint8. ``dark_ink``
    says how to flatten transparency (see ``_transparent_ink_is_dark``); ``None`` when the
    image has none.
    """
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    ratio = min(box_w / size[0], box_h / size[1])
    eight_bit = image.mode in ("L", "RGB")
    if (box_w, box_h) == size:
        region = image.crop(box) if box != (0, 0, image.width, image.height) else image
    elif eight_bit and 2 <= ratio < 4 and not exact:
        region = image.reduce(int(ratio), box=box)
        if region.size != size:
            region = region.resize(size, Image.Resampling.NEAREST)
    elif eight_bit and ratio < 4:
        region = image.resize(size, Image.Resampling.BOX, box=box)
    elif ratio >= 2:
        region = image.resize((2 * size[0], 2 * size[1]), Image.Resampling.NEAREST, box=box)
        if region.mode not in _REDUCIBLE:
            region = region.convert("RGBA" if has_alpha(region) else "RGB")
        region = region.reduce(2)
    else:  # 16-bit, float, palette or transparent images a little larger than ``size``
        pixels = _to_float(image.crop(box), dark_ink)
        return _Planes(
            tuple(
                np.asarray(
                    Image.fromarray(np.ascontiguousarray(pixels[..., c]), "F").resize(
                        size, Image.Resampling.BOX
                    ),
                    dtype=np.float32,
                )
                for c in range(pixels.shape[2])
            ),
            1.0,
        )
    if region.mode in ("L", "RGB"):
        if workspace is None:
            return _Planes(tuple(np.asarray(plane) for plane in region.split()), 255.0)
        return _Planes(_read_planes(region, workspace), 255.0)
    pixels = _to_float(region, dark_ink)
    return _Planes(tuple(np.ascontiguousarray(pixels[..., c]) for c in range(pixels.shape[2])), 1.0)


# Pillow's ``tobytes`` (behind ``np.asarray``) encodes in 64 KiB chunks and joins them: for a
# larger plane the chunks and the joined copy are each a fresh mapping (see .workspace), so
# planes are read in bands of rows under this many bytes, each one chunk and no join.
_BAND_BYTES = 60_000


def _read_planes(region: Image.Image, workspace: Workspace) -> tuple[np.ndarray, ...]:
    """The channels of an 8-bit ``region`` as uint8 (h, w) arrays on ``workspace``."""
    width, height = region.size
    rows = max(1, _BAND_BYTES // width)
    planes = []
    for channel, plane in enumerate(region.split()):
        out = workspace.array(f"plane {channel}", (height, width), np.uint8)
        for top in range(0, height, rows):
            out[top : top + rows] = np.asarray(plane.crop((0, top, width, min(top + rows, height))))
        planes.append(out)
    return tuple(planes)


@dataclass(frozen=True)
class _Planes:
    """An image's colour channels: 1 or 3 (h, w) arrays, uint8 (``full`` = 255) or float32 in
    [0, 1] (``full`` = 1). Kept as 8-bit planes where they come so: the ink strength then
    needs one multiply per channel, not a conversion pass."""

    planes: tuple[np.ndarray, ...]
    full: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.planes[0].shape

    def inverted(self) -> _Planes:
        if self.full == 255.0:
            return _Planes(tuple(np.uint8(255) - plane for plane in self.planes), 255.0)
        return _Planes(tuple(np.float32(1.0) - plane for plane in self.planes), 1.0)

    def darkest(self, step: int = 1) -> np.ndarray:
        """The smallest channel of every ``step``-th pixel in both directions, float32 in
        [0, 1]: paper of any tint is high in all three, a wooden or coloured desk is low in
        one (the blue of brown wood), even where its luminance is close to a tinted paper's."""
        planes = [plane[::step, ::step] for plane in self.planes]
        darkest = np.minimum(planes[0], planes[1])
        for plane in planes[2:]:
            np.minimum(darkest, plane, out=darkest)
        return darkest * np.float32(1.0 / self.full)

    def gray(self, step: int = 1) -> np.ndarray:
        """Luminance (ITU-R BT.601) of every ``step``-th pixel in both directions, float32 in
        [0, 1]."""
        scale = np.float32(1.0 / self.full)
        planes = [plane[::step, ::step] for plane in self.planes]
        if len(planes) == 1:
            return planes[0] * scale
        gray = planes[0] * (_LUMA[0] * scale)
        for plane, weight in zip(planes[1:], _LUMA[1:], strict=True):
            gray += plane * (weight * scale)
        return gray


# Modes Pillow's Image.reduce accepts as they are.
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F")


def _to_float(image: Image.Image, dark_ink: bool | None) -> np.ndarray:
    """float32 (h, w, c) in [0, 1]: RGB or grey kept as is, 16-bit and float images as grey,
    transparency flattened onto a background that contrasts with the ink."""
    if has_alpha(image):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        background = 1.0 if dark_ink else 0.0
        return rgba[..., :3] * alpha + background * (1.0 - alpha)
    if image.mode in ("L", "RGB"):
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    elif image.mode in ("1", "P", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"):
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        pixels = gray_float(image)
    return pixels if pixels.ndim == 3 else pixels[..., np.newaxis]


def _transparent_ink_is_dark(image: Image.Image) -> bool:
    """Whether the opaque strokes of a transparent image are dark ink (True) or light ink.

    Colour-keyed transparency (a palette index or tRNS colour) keeps the real background colour
    under the transparent pixels, and anti-aliased strokes then fade towards it: a thin dark
    stroke can average ~0.5. So when the hidden colour clearly differs from the strokes, the
    ink is whichever side of it the strokes are; otherwise the strokes' mean decides. Read on
    the working-resolution image.
    """
    small = image.resize(_fit_within(image.size, WORKING_SIDE), Image.Resampling.NEAREST)
    rgba = np.asarray(small.convert("RGBA"), dtype=np.float32) / 255.0
    luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    opaque = rgba[..., 3] > 0.5
    if not opaque.any():
        return True
    ink = float(luminance[opaque].mean())
    if not opaque.all():
        hidden = _quantile(luminance[~opaque], 0.5)
        if abs(ink - hidden) > 0.25:
            return ink < hidden
    return ink < 0.5


def _fit_box(crop: np.ndarray, box: int, resample: Image.Resampling) -> np.ndarray:
    """Resize so the longer side is ``box`` pixels, keeping the aspect ratio."""
    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(size, resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _paste_centred_by_mass(canvas: np.ndarray, digit: np.ndarray) -> None:
    """Paste ``digit`` into ``canvas`` with its centre of mass at index (n // 2, n // 2)."""
    n = canvas.shape[0]
    height, width = digit.shape
    mass = float(digit.sum())
    if mass > 0:
        ys, xs = np.indices(digit.shape)
        cy, cx = float((ys * digit).sum()) / mass, float((xs * digit).sum()) / mass
    else:
        cy, cx = (height - 1) / 2, (width - 1) / 2
    top = int(round(n // 2 - cy))
    left = int(round(n // 2 - cx))
    # Keep the whole digit on the canvas even when its mass is far off its box centre.
    top = min(max(top, 0), n - height)
    left = min(max(left, 0), n - width)
    canvas[top : top + height, left : left + width] = digit
