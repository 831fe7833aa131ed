"""Tiny-ImageNet-200 and ImageNet (ILSVRC2012) from their official folder layouts (docs/data.md).

Class index = position of the WordNet id in sorted order (ImageFolder semantics), whatever the
order of ``wnids.txt`` or of the devkit. Images are decoded with Pillow and always converted to
RGB (Tiny-ImageNet holds grayscale JPEGs). Per-sample work stops at what makes images the same
size (ImageNet's random resized crop, or resize + centre crop); everything else is batched
augmentation on the device (:mod:`adalif.data.augment`).
"""

from __future__ import annotations

import math
import os
import re
from functools import partial
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import DatasetFileError, MissingFileError, dataset_folder, missing_files
from .spec import DatasetSpec

SOURCES = {
    "tiny_imagenet": "http://cs231n.stanford.edu/tiny-imagenet-200.zip (extract it: tiny-imagenet-200/)",
    "imagenet": "https://image-net.org/download-images.php (ILSVRC2012 train and validation images, and the "
    "development kit for the labels of a flat val/ folder)",
}
EXTENSIONS = (".jpeg", ".jpg", ".png")
_WNID = re.compile(r"^n\d{8}$")


class ImageList(NamedTuple):
    paths: List[str]
    labels: np.ndarray  # int64 [N]
    classes: List[str]  # WordNet ids in label order


def _images_in(folder: str) -> List[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(EXTENSIONS))


def check_tiny_root(root) -> str:
    """The Tiny-ImageNet folder (``root`` or ``root/tiny-imagenet-200``) once its files are found."""
    root = dataset_folder(root, "tiny-imagenet-200")
    needed = ["wnids.txt", "train", "val/images", "val/val_annotations.txt"]
    missing_files("tiny_imagenet", root, needed, needed, SOURCES["tiny_imagenet"])
    return root


def check_imagenet_root(root) -> None:
    missing_files("imagenet", root, ["train", "val"], ["train/<wnid>/*.JPEG (1000 folders)",
                  "val/<wnid>/*.JPEG, or val/*.JPEG with a label file"], SOURCES["imagenet"])


def tiny_imagenet(root, train: bool) -> ImageList:
    """``train/<wnid>/images/*.JPEG`` or ``val/images`` labelled by ``val/val_annotations.txt``.

    ``root`` is the ``tiny-imagenet-200`` folder (or the folder that contains it).
    """
    root = check_tiny_root(root)
    with open(os.path.join(root, "wnids.txt")) as fh:
        classes = sorted(line.strip() for line in fh if line.strip())
    index = {w: i for i, w in enumerate(classes)}
    paths: List[str] = []
    labels: List[int] = []
    if train:
        for wnid in classes:
            folder = os.path.join(root, "train", wnid, "images")
            if not os.path.isdir(folder):
                raise MissingFileError(f"tiny_imagenet: missing folder {folder} (wnids.txt lists {wnid})")
            found = _images_in(folder)
            paths += found
            labels += [index[wnid]] * len(found)
    else:
        annotations = os.path.join(root, "val", "val_annotations.txt")
        with open(annotations) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) < 2 or fields[1] not in index:
                    raise DatasetFileError(
                        f"{annotations}: line {number}: expected 'file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1' "
                        f"with a wnid of wnids.txt, found {line.strip()!r}"
                    )
                paths.append(os.path.join(root, "val", "images", fields[0]))
                labels.append(index[fields[1]])
    return ImageList(paths, np.asarray(labels, dtype=np.int64), classes)


def _class_folders(folder: str) -> List[str]:
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def _read_val_labels(path: str, root: str) -> dict:
    """File name -> wnid, from either a devkit ground truth (one ILSVRC id per line, in the order
    of the sorted file names, mapped to WNIDs by the devkit's ``meta.mat``) or a text/CSV file of
    ``<file> <wnid>`` rows (``LOC_val_solution.csv`` style: ``file,wnid ...``; a header is skipped)."""
    with open(path) as fh:
        rows = [line.strip() for line in fh if line.strip()]
    files = sorted(os.path.basename(p) for p in _images_in(os.path.join(root, "val")))
    if rows and all(r.isdigit() for r in rows):
        meta = os.path.join(os.path.dirname(path), "meta.mat")
        if not os.path.isfile(meta):
            raise MissingFileError(f"imagenet: {path} holds devkit ids; their WNIDs come from {meta}, which is missing")
        from scipy.io import loadmat  # a dependency of scikit-learn

        synsets = loadmat(meta, squeeze_me=True)["synsets"]
        wnid_of = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
        if len(rows) != len(files):
            raise DatasetFileError(f"{path}: {len(rows)} labels for {len(files)} images in {os.path.join(root, 'val')}")
        return {f: wnid_of[int(r)] for f, r in zip(files, rows)}
    labels = {}
    for number, row in enumerate(rows, start=1):
        fields = re.split(r"[,\s]+", row)
        if len(fields) < 2 or not _WNID.match(fields[1]):
            if number == 1:
                continue  # header line
            raise DatasetFileError(f"{path}: line {number}: expected '<file> <wnid>', found {row!r}")
        name = fields[0] if fields[0].lower().endswith(EXTENSIONS) else fields[0] + ".JPEG"
        labels[name] = fields[1]
    return labels


def imagenet(root, train: bool, val_labels: Optional[str] = None) -> ImageList:
    """``train/<wnid>/*.JPEG``; ``val/<wnid>/*.JPEG``, or a flat ``val/`` with ``val_labels``.

    ``val_labels`` (for a flat val folder) defaults to the first that exists of
    ``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt``, ``LOC_val_solution.csv``
    and ``val_labels.txt`` under ``root``.
    """
    root = os.fspath(root)
    check_imagenet_root(root)
    classes = _class_folders(os.path.join(root, "train" if train or os.path.isdir(os.path.join(root, "train")) else "val"))
    index = {w: i for i, w in enumerate(classes)}
    paths: List[str] = []
    labels: List[int] = []
    split = os.path.join(root, "train" if train else "val")
    folders = _class_folders(split)
    if folders:
        for wnid in folders:
            if wnid not in index:
                raise DatasetFileError(f"imagenet: {os.path.join(split, wnid)} is not one of the train/ classes")
            found = _images_in(os.path.join(split, wnid))
            paths += found
            labels += [index[wnid]] * len(found)
        return ImageList(paths, np.asarray(labels, dtype=np.int64), classes)
    candidates = [val_labels] if val_labels else [
        os.path.join(root, "ILSVRC2012_devkit_t12", "data", "ILSVRC2012_validation_ground_truth.txt"),
        os.path.join(root, "LOC_val_solution.csv"), os.path.join(root, "val_labels.txt"),
    ]
    found_labels = next((c for c in candidates if os.path.isfile(c)), None)
    if found_labels is None:
        raise MissingFileError(
            f"imagenet: val/ is flat but no label file was found (looked for {', '.join(candidates)}); pass "
            f"data.options.val_labels, or reorganise val/ into val/<wnid>/ folders"
        )
    wnid_of = _read_val_labels(found_labels, root)
    for path in _images_in(split):
        name = os.path.basename(path)
        if name not in wnid_of or wnid_of[name] not in index:
            raise DatasetFileError(f"{found_labels}: no label (or an unknown wnid) for {name}")
        paths.append(path)
        labels.append(index[wnid_of[name]])
    return ImageList(paths, np.asarray(labels, dtype=np.int64), classes)


def load_rgb(path: str) -> Image.Image:
    """The image at ``path`` in RGB mode; an unreadable file is an error that names it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise
    except Exception as err:  # Pillow raises several types for a corrupt or truncated image
        raise DatasetFileError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err


def to_tensor(img: Image.Image) -> torch.Tensor:
    """uint8 ``[3, H, W]``."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def random_resized_crop(img: Image.Image, size: int, scale: Sequence[float] = (0.08, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3)) -> Image.Image:
    """The Inception-style random resized crop of the recipes: 10 tries of an area fraction in
    ``scale`` and a log-uniform aspect ratio, else the centre crop, drawn from torch's RNG.
    Written here because the images differ in size, so this step precedes batching; Kornia
    works on batches."""
    width, height = img.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1]))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio)))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,)))
            left = int(torch.randint(0, width - w + 1, (1,)))
            return img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    in_ratio = width / height
    w, h = (width, round(width / ratio[0])) if in_ratio < ratio[0] else (
        (round(height * ratio[1]), height) if in_ratio > ratio[1] else (width, height))
    left, top = (width - w) // 2, (height - h) // 2
    return img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))


def resize_center_crop(img: Image.Image, resize: int, crop: int) -> Image.Image:
    """Shorter side to ``resize`` (bilinear), then the central ``crop`` x ``crop``."""
    width, height = img.size
    scale = resize / min(width, height)
    w, h = max(crop, round(width * scale)), max(crop, round(height * scale))
    img = img.resize((w, h), Image.BILINEAR)
    left, top = (w - crop) // 2, (h - crop) // 2
    return img.crop((left, top, left + crop, top + crop))


class ImageDataset(torch.utils.data.Dataset):
    """Samples ``(uint8 [3, H, W], label)`` decoded from a list of files."""

    def __init__(self, images: ImageList, transform: Optional[Callable[[Image.Image], Image.Image]] = None) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images.paths)

    def __getitem__(self, i: int):
        img = load_rgb(self.images.paths[i])
        if self.transform is not None:
            img = self.transform(img)
        return to_tensor(img), int(self.images.labels[i])


def _imagenet_sets(root, T, options):
    crop, resize, scale = int(options["crop"]), int(options["resize"]), tuple(options["scale"])
    train_tf = (partial(random_resized_crop, size=crop, scale=scale)
                if any(a.startswith("random_resized_crop") for a in options["augment"])
                else partial(resize_center_crop, resize=resize, crop=crop))
    test_tf = partial(resize_center_crop, resize=resize, crop=crop)
    return (ImageDataset(imagenet(root, True), train_tf),
            ImageDataset(imagenet(root, False, options["val_labels"]), test_tf))


TINY_IMAGENET = DatasetSpec(
    "tiny_imagenet", "image", 200, 3, SOURCES["tiny_imagenet"], side=lambda o: 64, normalize="tiny_imagenet",
    check_root=check_tiny_root,
    load=lambda root, T, o: (ImageDataset(tiny_imagenet(root, True)), ImageDataset(tiny_imagenet(root, False))),
)
IMAGENET = DatasetSpec(
    "imagenet", "image", 1000, 3, SOURCES["imagenet"], side=lambda o: int(o["crop"]), normalize="imagenet",
    options={"val_labels": None, "crop": 224, "resize": 256, "scale": (0.08, 1.0)},
    check_root=check_imagenet_root, load=_imagenet_sets,
)
