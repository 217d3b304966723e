"""Image loaders: UTKFace and CIFAR-10 (generated files in tmp_path, plus the real data)."""

import pickle
import warnings

import numpy as np
import pytest
from PIL import Image

from sklearn_privacy.datasets import load_cifar10, load_utkface
from sklearn_privacy.datasets._images import CIFAR10_CLASSES


def _save_jpeg(path, rgb, size=(10, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros(size + (3,), dtype=np.uint8)
    img[...] = rgb
    Image.fromarray(img).save(path, quality=95)


# -- UTKFace -----------------------------------------------------------------------------
def test_load_utkface_parses_names_and_reports_malformed_ones(tmp_path):
    folder = tmp_path / "crop_part1"
    good = {
        "25_0_1_20170116174525125.jpg.chip.jpg": (25, 0, 1),
        "3_1_4_20161219203650636.jpg.chip.jpg": (3, 1, 4),
        "14_0_0_2017011022340900.jpg.chip.jpg": (14, 0, 0),  # 16-digit datetime: fine
    }
    bad = {
        "61_1_20170109142408075.jpg.chip.jpg": "found 3",
        "30_2_0_20170109150557335.jpg.chip.jpg": "gender 2",
        "40_1_7_20170109150557335.jpg.chip.jpg": "race 7",
        "x_1_0_20170109150557335.jpg.chip.jpg": "integers",
    }
    for i, name in enumerate(list(good) + list(bad)):
        _save_jpeg(folder / name, (20 * i, 100, 200))
    with pytest.warns(UserWarning, match="skipped 4 file"):
        data = load_utkface(tmp_path)  # the parent of crop_part1 works too
    assert data.filenames == sorted(good)
    expected = np.array([good[n] for n in data.filenames])
    np.testing.assert_array_equal(np.c_[data.age, data.gender, data.race], expected)
    assert data.images.shape == (3, 10, 12, 3) and data.images.dtype == np.uint8
    assert abs(int(data.images[0, 5, 5, 2]) - 200) <= 3  # decoded pixels, not zeros
    assert sorted(n for n, _ in data.skipped) == sorted(bad)
    for name, reason in data.skipped:
        assert bad[name] in reason
    assert "Zhang" in data.DESCR
    with pytest.warns(UserWarning):
        small = load_utkface(folder, size=(4, 6), max_images=2)
    assert small.images.shape == (2, 4, 6, 3) and small.filenames == sorted(good)[:2]


def test_load_utkface_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*<age>_<gender>_<race>_<datetime>"):
        load_utkface(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no .jpg"):
        load_utkface(tmp_path)
    with pytest.raises(ValueError, match="size"):
        load_utkface(tmp_path, size=0)


# -- CIFAR-10, pickled batches -----------------------------------------------------------
def _write_batches(folder, *, protocol, bytes_keys, per_batch=7):
    """Write CIFAR-10-like python batches; return the expected train/test arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    expected = {}
    for subset, names in [("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])]:
        images, labels, files = [], [], []
        for name in names:
            img = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
            lab = rng.integers(0, 10, per_batch).tolist()
            fn = [f"{name}_{i}.png".encode() for i in range(per_batch)]
            batch = {
                key("batch_label"): f"{name}".encode(),
                key("labels"): lab,
                key("data"): img.transpose(0, 3, 1, 2).reshape(per_batch, -1),  # R, G, B planes
                key("filenames"): fn,
            }
            with open(folder / name, "wb") as f:
                pickle.dump(batch, f, protocol=protocol)
            images.append(img)
            labels += lab
            files += [f.decode() for f in fn]
        expected[subset] = (np.concatenate(images), np.array(labels), files)
    meta = {key("label_names"): [c.encode() for c in CIFAR10_CLASSES], key("num_vis"): 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    return expected


@pytest.mark.parametrize("protocol, bytes_keys", [(2, True), (5, False)])
def test_load_cifar10_pickled_batches(tmp_path, protocol, bytes_keys):
    expected = _write_batches(tmp_path / "cifar-10-batches-py", protocol=protocol, bytes_keys=bytes_keys)
    for subset in ("train", "test"):
        data = load_cifar10(tmp_path, subset=subset)
        images, labels, files = expected[subset]
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.target, labels)
        assert data.filenames == files and data.target_names == list(CIFAR10_CLASSES)
    # max_per_class keeps the first images of each class, in batch order.
    images, labels, _ = expected["train"]
    data = load_cifar10(tmp_path / "cifar-10-batches-py", max_per_class=1)
    first = np.sort([np.flatnonzero(labels == c)[0] for c in np.unique(labels)])
    np.testing.assert_array_equal(data.target, labels[first])
    np.testing.assert_array_equal(data.images, images[first])


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_load_cifar10_refuses_pickles_with_code(tmp_path):
    _write_batches(tmp_path, protocol=2, bytes_keys=True, per_batch=2)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": _Exploit(), "labels": [0]}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        load_cifar10(tmp_path, subset="test")


# -- CIFAR-10, JPEG folders --------------------------------------------------------------
def test_load_cifar10_jpeg_folders(tmp_path):
    for k, cls in enumerate(CIFAR10_CLASSES):
        for i in range(3):
            _save_jpeg(tmp_path / "test" / cls / f"{i:04d}.jpg", (25 * k, 10 * i, 0), size=(32, 32))
    data = load_cifar10(tmp_path, subset="test")
    assert data.images.shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(data.target, np.repeat(np.arange(10), 3))
    assert data.filenames[4] == "test/automobile/0001.jpg"
    reds = data.images[:, 16, 16, 0].astype(int)
    assert np.all(np.abs(reds - 25 * data.target) <= 3)  # images match their class folder
    sub = load_cifar10(tmp_path, subset="test", max_per_class=2)
    assert len(sub.target) == 20 and sub.filenames[:2] == ["test/airplane/0000.jpg", "test/airplane/0001.jpg"]
    with pytest.raises(FileNotFoundError, match=r"'train'.*Expected"):
        load_cifar10(tmp_path, subset="train")
    with pytest.raises(FileNotFoundError, match=r"missing.*data_batch_1"):
        load_cifar10(tmp_path / "missing")
    with pytest.raises(ValueError, match="subset"):
        load_cifar10(tmp_path, subset="val")


# -- real data -----------------------------------------------------------------------------
@pytest.mark.shared_data
def test_load_utkface_real(shared_data_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_utkface(shared_data_dir / "utkface" / "crop_part1", size=8)
    assert any("skipped 2 file" in str(w.message) for w in caught)
    assert len(data.filenames) + len(data.skipped) == 9780
    assert data.images.shape == (9778, 8, 8, 3)
    assert sorted(n for n, _ in data.skipped) == [
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_3_20170109150557335.jpg.chip.jpg",
    ]
    assert "14_0_0_2017011022340900.jpg.chip.jpg" in data.filenames
    np.testing.assert_array_equal(np.bincount(data.gender), [4372, 5406])
    np.testing.assert_array_equal(np.bincount(data.race), [5265, 405, 1553, 1452, 1103])
    assert data.age.min() == 1 and data.age.max() == 110


@pytest.mark.shared_data
def test_load_cifar10_real(shared_data_dir):
    test = load_cifar10(shared_data_dir / "cifar10", subset="test")
    assert test.images.shape == (10000, 32, 32, 3) and test.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(test.target), [1000] * 10)
    assert test.target_names == list(CIFAR10_CLASSES)
    assert test.images.std() > 30  # real pictures, not blank decodes
    train = load_cifar10(shared_data_dir / "cifar10", subset="train", max_per_class=20)
    assert train.images.shape == (200, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(train.target), [20] * 10)
    assert train.filenames[0] == "train/airplane/0000.jpg"
