"""What a prediction is fed: one input, or a batch, read as float32 arrays (N, C, H, W) a chunk at a
time (`Inputs.chunks`), so a folder of 50,000 images or a large .npy is never held whole.

    image (PNG, JPEG, BMP, GIF, WebP)   preprocessed as the model's spec says (core/standard/spec.py:
                                        channel order, resize, centre crop, scale to [0, 1], mean/std);
                                        without a spec: RGB resized to H x W, scaled to [0, 1]
    folder of images                    a batch, in file-name order
    .npy array, .pt tensor              model inputs already: (C, H, W) or (N, C, H, W), fed as
                                        they are (.npy without pickles, memory-mapped and read
                                        per chunk; .pt with weights_only)
    random                              one sample of uniform pixels, normalised like an image

Images decode with Pillow; arrays with numpy.load(allow_pickle=False). The centre crop takes
torchvision's offsets (torchvision/transforms/functional.py `center_crop`:
`int(round((height - crop_height) / 2.0))`, likewise for the width), so an odd difference
rounds as a model trained with torchvision's Resize + CenterCrop saw it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from vtm_tui.errors import UserError

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class Inputs:
    """A batch to predict on: one name per sample (the image's file name, `x.npy[3]`, `random`) and
    `read(start, stop)`, which reads, preprocesses and returns samples [start, stop) as float32
    (stop - start, C, H, W); images are decoded only when their chunk is read."""
    names: list[str]
    read: Callable[[int, int], np.ndarray]

    def __len__(self) -> int:
        return len(self.names)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The samples in order, `size` at a time (the last chunk may be shorter), each read when
        it is asked for."""
        for start in range(0, len(self), size):
            yield self.read(start, min(start + size, len(self)))

    @property
    def array(self) -> np.ndarray:
        """All samples at once, float32 (N, C, H, W): for a single request (a model server's
        /invocations) or a small batch."""
        return self.read(0, len(self))


def _array_inputs(array, names: list[str]) -> Inputs:
    """Inputs over an array (N, C, H, W) of any numeric dtype (a memory map too): each chunk is
    sliced and converted to contiguous float32 when read."""
    import numpy as np

    return Inputs(names, lambda start, stop: np.ascontiguousarray(array[start:stop], dtype=np.float32))


def _image_inputs(paths: list[Path], shape: tuple[int, int, int], spec) -> Inputs:
    """Inputs over image files, decoded and preprocessed (preprocess_image) a chunk at a time."""
    import numpy as np

    def read(start: int, stop: int):
        return np.stack([preprocess_image(path, shape, spec) for path in paths[start:stop]])

    return Inputs([path.name for path in paths], read)


def _normalise(array, spec):
    import numpy as np

    if spec is None:
        return array
    if spec.mean is not None:
        array = array - np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    if spec.std is not None:
        array = array / np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1)
    return array.astype(np.float32)


def preprocess_image(path: Path, shape: tuple[int, int, int], spec=None):
    """One image as the model wants it: (C, H, W) float32 (see the module docstring; the centre
    crop's offsets are torchvision's CenterCrop's). UserError
    for an unreadable image or a model that takes neither 1 nor 3 channels."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    if channels not in (1, 3):
        raise UserError(f"input {path}: the model takes {channels} channels; images give 1 or 3: use a .npy")
    resize = tuple(spec.resize) if spec is not None and spec.resize else (height, width)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L").resize((resize[1], resize[0]), Image.BILINEAR)
            if resize != (height, width):  # torchvision's Resize + CenterCrop
                # torchvision's center_crop offsets: int(round(diff / 2.0)), so 3 gives 2, 5 gives 2
                top = max(0, int(round((resize[0] - height) / 2.0)))
                left = max(0, int(round((resize[1] - width) / 2.0)))
                image = image.crop((left, top, left + width, top + height))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"input {path}: not a readable image ({exc})") from None
    array = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    if spec is not None and spec.channel_order == "BGR" and channels == 3:
        array = array[::-1]
    return _normalise(np.ascontiguousarray(array), spec)


def _array_file(path: Path):
    import numpy as np

    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as exc:  # EOFError: an empty or truncated file
            raise UserError(f"input {path}: not a plain numeric .npy array ({exc or type(exc).__name__})") from None
        except OSError as exc:
            raise UserError(f"input {path}: cannot read it ({exc})") from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise UserError(f"input {path}: not a plain numeric .npy array")
        return array
    from vtm_tui.core.standard.checkpoint import safe_load

    tensor = safe_load(path)
    if not hasattr(tensor, "numpy"):
        raise UserError(f"input {path}: expected a tensor, found {type(tensor).__name__}")
    return tensor.detach().cpu().float().numpy()


def load_inputs(source: str | None, shape: tuple[int, int, int], *, spec=None, random: bool = False,
                seed: int = 0) -> Inputs:
    """The batch for `source` (see the module docstring) for a model taking `shape` = (C, H, W),
    preprocessed per `spec` (a core.standard ModelSpec, or None) as each chunk is read. UserError
    for a missing or unsupported source and for arrays of another shape (images that cannot be
    decoded: when their chunk is read)."""
    import numpy as np

    shape = tuple(int(v) for v in shape)
    if random or source is None:
        if not random:
            raise UserError("give an input (--input PATH: an image, a folder of images, .npy or .pt) or --random")
        pixels = np.random.default_rng(seed).random((1, *shape), dtype=np.float32)
        return _array_inputs(np.stack([_normalise(p, spec) for p in pixels]), ["random"])
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UserError(f"input {source}: a folder with no images ({', '.join(IMAGE_SUFFIXES)})")
        return _image_inputs(images, shape, spec)
    if not path.is_file():
        raise UserError(f"input {source}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _image_inputs([path], shape, spec)
    if suffix not in (".npy", ".pt", ".pth"):
        raise UserError(f"input {source}: unsupported type {suffix or '(none)'}; use an image (PNG/JPEG), "
                        f"a folder of images, .npy or .pt")
    array = _array_file(path)
    if array.ndim == len(shape):
        array = array[None]
    if array.shape[1:] != shape:
        raise UserError(f"input {source}: shape {tuple(array.shape)} does not match the model's "
                        f"input (N, {', '.join(map(str, shape))})")
    names = [path.name] if len(array) == 1 else [f"{path.name}[{i}]" for i in range(len(array))]
    return _array_inputs(array, names)
