"""The model manifest: the JSON file written next to every ``.onnx`` by ``convert/``.

The service trusts nothing about a model that the manifest does not state: the input tensor
(name, shape, dtype, NHWC/NCHW layout), the preprocessing to apply, how to read the output
(softmax probabilities, raw logits, or one sigmoid probability) and the file's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_FILENAME = "manifest.json"
SCHEMA_VERSION: Literal[1] = 1

Resample = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]


OutputKind = Literal["softmax", "logits", "sigmoid"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """One input tensor. ``shape`` uses ``None`` for the dynamic batch dimension."""

    name: str
    shape: list[int | None]
    dtype: Literal["float32"] = "float32"
    layout: Literal["NHWC", "NCHW"] = "NHWC"

    @model_validator(mode="after")
    def _four_dims(self) -> TensorSpec:
        if len(self.shape) != 4 or any(d is not None and d <= 0 for d in self.shape[1:]):
            raise ValueError(f"input shape must be 4-D with positive H, W, C; got {self.shape}")
        return self

    @property
    def height_width_channels(self) -> tuple[int, int, int]:
        dims = self.shape[1:] if self.layout == "NHWC" else [*self.shape[2:], self.shape[1]]
        if any(d is None for d in dims):
            raise ValueError(f"spatial dims of {self.name} must be static; got {self.shape}")
        h, w, c = dims
        return int(h), int(w), int(c)  # type: ignore[arg-type]


class OutputSpec(_Frozen):
    """How to read the model's single output.

    ``softmax``: (batch, classes) probabilities. ``logits``: (batch, classes) scores the
    service turns into probabilities with a softmax. ``sigmoid``: (batch, 1) probability of
    ``labels[1]`` (binary classifier; ``labels[0]`` gets ``1 - p``).
    """

    name: str
    kind: OutputKind


class MnistDigitPreprocessing(_Frozen):
    """Normalise an arbitrary photo of one digit the way MNIST was made.

    Source: LeCun et al., "The MNIST database" (http://yann.lecun.com/exdb/mnist/): digits were
    size-normalised to a 20x20 box keeping aspect ratio, anti-aliased, then centred in 28x28 by
    centre of mass. Ink is light on dark; values are scaled to [0, 1].
    """

    kind: Literal["mnist_digit"] = "mnist_digit"
    box: int = 20
    canvas: int = 28
    resample: Resample = "lanczos"


ChannelOrder = Literal["RGB", "BGR"]


class ImagePreprocessing(_Frozen):
    """Resize an image to the model's input and normalise every pixel with one affine map.

    ``value = (pixel x scale - mean[c]) / std[c]`` for an 8-bit ``pixel`` in [0, 255] and
    channel ``c`` of the model's input, written in the input's layout (NHWC or NCHW). The
    channels come from ``input``: 3 is an RGB photo (in ``channel_order``), 1 is its luma
    (Pillow's ``convert("L")``, ITU-R BT.601). ``mean`` / ``std`` give one value for every
    channel or one per channel in the model's channel order (BGR models list B first, as
    Keras's ``caffe`` mode does). Transparency is composited over white.

    ``resize_shorter``: the shorter side is resized to this many pixels, then the centre crop of
    the input size is taken (torchvision's ``Resize(256)`` + ``CenterCrop(224)``); ``None``
    resizes the whole image straight to the input size (``keras.utils.load_img(target_size=)``).
    """

    kind: Literal["image"] = "image"
    resize_shorter: int | None = Field(default=None, gt=0)
    resample: Resample = "bilinear"
    scale: float = Field(default=1.0 / 255.0, gt=0)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    channel_order: ChannelOrder = "RGB"

    @model_validator(mode="after")
    def _per_channel(self) -> ImagePreprocessing:
        for field, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, 3):
                raise ValueError(f"{field} needs 1 value or 3 (one per channel), got {len(values)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got {list(self.std)}")
        return self

    def per_channel(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std), each with ``channels`` values.

        Raises:
            ValueError: ``channels`` is not 1 or 3, or 3 values are given for a 1-channel input.
        """
        if channels not in (1, 3):
            raise ValueError(f"image preprocessing makes 1 (grey) or 3 (colour) channels, not {channels}")
        if channels == 1 and (len(self.mean) == 3 or len(self.std) == 3):
            raise ValueError("image preprocessing has 3 mean/std values but the input has 1 channel")
        return _widen(self.mean, channels), _widen(self.std, channels)


def _widen(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    return values * channels if len(values) == 1 else values


# The standard normalisations, by their usual names (``python -m convert import --preset``).
# Sources: keras.applications.imagenet_utils.preprocess_input (modes "tf", "caffe", "torch");
# torchvision's ImageNet weights' transforms (mean / std of ImageNet, RGB, [0, 1] pixels).
IMAGE_PRESETS: dict[str, dict[str, Any]] = {
    "keras-tf": {"scale": 1.0 / 127.5, "mean": (1.0,), "std": (1.0,), "channel_order": "RGB"},
    "keras-caffe": {
        "scale": 1.0,
        "mean": (103.939, 116.779, 123.68),
        "std": (1.0,),
        "channel_order": "BGR",
    },
    "torch": {
        "scale": 1.0 / 255.0,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "channel_order": "RGB",
    },
}
_PRESET_OF_MODE = {"tf": "keras-tf", "caffe": "keras-caffe", "torch": "torch"}


class ImageNetPreprocessing(_Frozen):
    """Resize, centre-crop and normalise an RGB photo for a Keras ImageNet model.

    The form manifests written before the general ``image`` kind use; it is served as the
    ``ImagePreprocessing`` that ``as_image()`` returns (one code path for both).

    ``mode`` follows ``keras.applications.imagenet_utils.preprocess_input``: ``tf`` scales to
    [-1, 1]; ``caffe`` converts RGB to BGR and subtracts the ImageNet channel means (no
    scaling); ``torch`` scales to [0, 1] then standardises with ImageNet mean/std.
    ``resize_shorter``: shorter side is resized to this many pixels, then a centre crop of the
    model's input size is taken; ``None`` resizes the whole image straight to the input size.
    """

    kind: Literal["imagenet"] = "imagenet"
    mode: Literal["tf", "caffe", "torch"]
    resize_shorter: int | None = None
    resample: Resample = "bilinear"

    def as_image(self) -> ImagePreprocessing:
        """The same preprocessing as a case of the general ``image`` kind."""
        return ImagePreprocessing(
            resize_shorter=self.resize_shorter,
            resample=self.resample,
            **IMAGE_PRESETS[_PRESET_OF_MODE[self.mode]],
        )


Preprocessing = Annotated[
    MnistDigitPreprocessing | ImagePreprocessing | ImageNetPreprocessing, Field(discriminator="kind")
]


class Manifest(_Frozen):
    """Everything the service needs to serve one ONNX model, and how it was made."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    version: str
    task: Literal["image-classification"] = "image-classification"
    description: str = ""
    file: str = Field(description="ONNX file name, relative to the manifest's directory.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    labels: list[str] = Field(min_length=2)
    input: TensorSpec
    output: OutputSpec
    preprocessing: Preprocessing
    weights: Literal["trained", "pretrained", "random"] = Field(
        description="'random' marks a model for parity/speed tests only, not real predictions."
    )
    quantization: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    tools: dict[str, str] = Field(default_factory=dict)
    created: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if Path(self.file).name != self.file:
            raise ValueError(f"file must be a bare file name, got {self.file!r}")
        if self.output.kind == "sigmoid" and len(self.labels) != 2:
            raise ValueError("a sigmoid output needs exactly 2 labels")
        return self

    @property
    def for_real_predictions(self) -> bool:
        return self.weights != "random"


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
