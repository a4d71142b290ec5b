"""Dataset scans and files that must not lie: symbolic links (cycles, duplicates, links
into other classes), IDX label and header validation, and a corrupt-file corpus where
each case has its expected one-line error."""
import gzip
import logging
import os

import numpy as np
import pytest
from PIL import Image

import minidl.data as D
from minidl.data.folder import CorruptImageError


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def _samples(ds):
    return sorted((os.path.relpath(ds.path(i), ds.root), int(ds.targets[i])) for i in range(len(ds)))


# ---------------------------------------------------------------- symbolic links
def test_symlink_cycles_neither_multiply_nor_mislabel_images(tmp_path, caplog):
    root = tmp_path / "root"
    _png(root / "cat" / "c0.png")
    _png(root / "cat" / "sub" / "c1.png")
    _png(root / "dog" / "d0.png")
    os.symlink(root / "cat", root / "cat" / "sub" / "loop")     # cycle back to its class folder
    os.symlink(root, root / "cat" / "to_root")                  # cycle through the root, into 'dog'
    os.symlink(root / "dog", root / "cat" / "to_dog")           # another class's folder
    with caplog.at_level(logging.WARNING, logger="minidl.data"):
        ds = D.ImageFolder(root)
    assert ds.classes == ["cat", "dog"]
    assert _samples(ds) == [("cat/c0.png", 0), ("cat/sub/c1.png", 0), ("dog/d0.png", 1)]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for link in ("loop", "to_root", "to_dog"):
        assert link in skipped


def test_links_outside_the_root_are_followed_once(tmp_path):
    outside = tmp_path / "elsewhere"
    _png(outside / "x0.png")
    _png(outside / "deeper" / "x1.png")
    os.symlink(outside, outside / "deeper" / "back_up")          # a cycle outside the root
    root = tmp_path / "root"
    _png(root / "a" / "a0.png")
    os.symlink(outside, root / "a" / "extra")
    os.symlink(outside, root / "a" / "extra_again")              # the same folder a second way
    (root / "b").parent.mkdir(exist_ok=True)
    os.symlink(tmp_path / "b_store", root / "b")                 # a class folder that is a link
    _png(tmp_path / "b_store" / "b0.png")
    ds = D.ImageFolder(root)
    assert _samples(ds) == [("a/a0.png", 0), ("a/extra/deeper/x1.png", 0), ("a/extra/x0.png", 0),
                            ("b/b0.png", 1)]


def test_two_class_folders_that_are_one_directory_are_an_error(tmp_path):
    _png(tmp_path / "store" / "x.png")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path / "store", root / "a")
    os.symlink(tmp_path / "store", root / "b")
    with pytest.raises(ValueError, match="already scanned for another class"):
        D.ImageFolder(root)


# ---------------------------------------------------------------- IDX
def _idx_bytes(arr, code=0x08):
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _idx_pair(folder, labels, label_code=0x08):
    images = np.zeros((len(labels), 3, 3), np.uint8)
    (folder / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images))
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.asarray(labels), label_code))
    return folder / "train-images-idx3-ubyte", folder / "train-labels-idx1-ubyte"


def test_out_of_range_labels_name_the_file_and_first_bad_sample(tmp_path):
    _idx_pair(tmp_path, np.array([1, 9, 10, 3, 200], np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte': label 10 of sample 2 is out of "
                                         r"range \(expected in \[0, 10\); 2 bad labels in all\)"):
        D.FashionMNIST(tmp_path)


def test_negative_and_float_labels_are_rejected_without_classes(tmp_path):
    images, labels = _idx_pair(tmp_path, np.array([0, 2, -1], np.int8), label_code=0x09)
    with pytest.raises(ValueError, match="label -1 of sample 2 is out of range \\(expected >= 0"):
        D.IDXDataset(images, labels)
    images, labels = _idx_pair(tmp_path, np.array([0.0, 1.5, 2.0], np.float32), label_code=0x0D)
    with pytest.raises(ValueError, match="holds float32 values; class labels must be an integer"):
        D.IDXDataset(images, labels)


def test_idx_size_check_does_not_overflow(tmp_path):
    # dims whose product overflows int64 (2^32-1)^3 * 2^32-1: compared as Python ints
    header = bytes([0, 0, 0x08, 4]) + np.array([2**32 - 1] * 4, ">u4").tobytes()
    (tmp_path / "huge").write_bytes(header + b"\x00" * 16)
    with pytest.raises(ValueError, match=f"needs {20 + (2**32 - 1) ** 4} bytes, but the file has 36"):
        D.read_idx(tmp_path / "huge")


# ---------------------------------------------------------------- corrupt-file corpus
def _write(path, data):
    path.write_bytes(data)
    return path


GOOD_LABELS = _idx_bytes(np.array([0, 1, 2], np.uint8))
IDX_CORPUS = [
    ("zero-byte", b"", r"not an IDX file: expected a header 00 00 <type> <ndim> .*got $"),
    ("wrong magic", b"\x12\x34\x08\x01" + GOOD_LABELS[4:], r"not an IDX file: .* got 12 34 08 01"),
    ("unknown type code", b"\x00\x00\x07\x01" + GOOD_LABELS[4:], r"not an IDX file: .* got 00 00 07 01"),
    ("inside the header", GOOD_LABELS[:6], r"ends inside its header \(6 bytes\)"),
    ("truncated data", GOOD_LABELS[:-1], r"has shape \(3,\) of uint8, which needs 11 bytes, but the file has 10"),
    ("trailing bytes", GOOD_LABELS + b"\x00", r"needs 11 bytes, but the file has 12"),
    ("truncated gzip", gzip.compress(GOOD_LABELS)[:-6], r"is a damaged gzip file"),
    ("gzip of junk", gzip.compress(b"PK\x03\x04 a zip file"), r"not an IDX file"),
]


@pytest.mark.parametrize("name, data, message", IDX_CORPUS, ids=[c[0] for c in IDX_CORPUS])
def test_corrupt_idx_files_give_one_line_errors(tmp_path, name, data, message):
    path = _write(tmp_path / "labels.idx", data)
    with pytest.raises(ValueError, match=message) as info:
        D.read_idx(path)
    assert "labels.idx" in str(info.value) and "\n" not in str(info.value)


JUNK_IMAGES = [
    ("zero-byte", b""),
    ("text", b"this is not an image\n"),
    ("truncated png", None),
    ("wrong magic", b"\x89PNX\r\n\x1a\n" + b"\x00" * 64),
]


@pytest.mark.parametrize("name, data", JUNK_IMAGES, ids=[c[0] for c in JUNK_IMAGES])
def test_junk_images_give_one_line_corrupt_image_errors(tmp_path, name, data):
    path = tmp_path / "cls" / "bad.png"
    if data is None:
        _png(path, 7)
        data = path.read_bytes()[:40]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    _png(tmp_path / "cls" / "good.png")
    ds = D.ImageFolder(tmp_path)
    assert len(ds) == 2
    bad = [i for i in range(2) if ds.path(i).endswith("bad.png")][0]
    with pytest.raises(CorruptImageError, match=r"cannot decode image '.*bad.png' \(") as info:
        ds[bad]
    assert "\n" not in str(info.value)
    assert ds[1 - bad][0].shape == (3, 4, 4)
