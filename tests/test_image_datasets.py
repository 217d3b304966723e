"""Image loaders: UTKFace and CIFAR-10 (generated files in tmp_path, plus the real data)."""

import pickle
import re
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


def _cifar_jpeg_tree(root, subset, per_class=2, classes=CIFAR10_CLASSES):
    for k, cls in enumerate(classes):
        for i in range(per_class):
            _save_jpeg(root / subset / cls / f"{i:04d}.jpg", (25 * k, 10 * i, 0), size=(32, 32))


def _assert_targets_match_colours(data):
    """Each generated image's red level encodes its canonical class index."""
    reds = data.images[:, 16, 16, 0].astype(int)
    assert np.all(np.abs(reds - 25 * data.target) <= 3)
    assert all(f.split("/")[1] == CIFAR10_CLASSES[t] for f, t in zip(data.filenames, data.target))


def test_load_cifar10_jpeg_ignores_hidden_folders_and_files(tmp_path):
    # An empty notebook-checkpoint folder in train/ sorted first and shifted every label by
    # one in train but not in test; macOS resource forks crashed the decoder.
    for subset in ("train", "test"):
        _cifar_jpeg_tree(tmp_path, subset)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "train" / "cat" / "._0000.jpg").write_bytes(b"\x00\x05\x16\x07 not a jpeg")
    (tmp_path / "test" / "__MACOSX").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train = load_cifar10(tmp_path, subset="train")
        test = load_cifar10(tmp_path, subset="test")
    for data in (train, test):
        assert data.target_names == list(CIFAR10_CLASSES)
        np.testing.assert_array_equal(data.target, np.repeat(np.arange(10), 2))
        _assert_targets_match_colours(data)


def test_load_cifar10_jpeg_missing_or_unknown_class_folder(tmp_path):
    # Without "cat", the 9 remaining folders used to be numbered 0..8: dog became 4.
    _cifar_jpeg_tree(tmp_path, "test", classes=[c for c in CIFAR10_CLASSES if c != "cat"])
    with pytest.raises(FileNotFoundError, match=r"test.*\['cat'\] missing"):
        load_cifar10(tmp_path, subset="test")
    _cifar_jpeg_tree(tmp_path, "train")
    _save_jpeg(tmp_path / "train" / "lion" / "0000.jpg", (0, 0, 0), size=(32, 32))
    with pytest.raises(ValueError, match=r"train.*\['lion'\] are not CIFAR-10 classes"):
        load_cifar10(tmp_path, subset="train")


def test_load_cifar10_jpeg_warns_about_non_image_files(tmp_path):
    _cifar_jpeg_tree(tmp_path, "test", per_class=1)
    (tmp_path / "test" / "dog" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"ignored 1 non-image file.*dog/notes\.txt"):
        data = load_cifar10(tmp_path, subset="test")
    assert len(data.target) == 10


@pytest.mark.parametrize("loader", ["cifar10", "utkface"])
def test_truncated_jpeg_error_names_the_file(tmp_path, loader):
    if loader == "cifar10":
        _cifar_jpeg_tree(tmp_path, "test", per_class=1)
        bad = tmp_path / "test" / "frog" / "0000.jpg"
        load = lambda: load_cifar10(tmp_path, subset="test")  # noqa: E731
    else:
        for i in range(3):
            _save_jpeg(tmp_path / f"2{i}_0_1_2017011617452512{i}.jpg.chip.jpg", (0, 0, 0))
        bad = tmp_path / "21_0_1_20170116174525121.jpg.chip.jpg"
        load = lambda: load_utkface(tmp_path)  # noqa: E731
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load()


@pytest.mark.parametrize(
    "array, file_format, mode",
    # Older Pillow (10.0) opens a 16-bit PNG as mode "I", newer (13.0) as "I;16".
    [(np.full((32, 32), 1000, np.uint16), "PNG", "I(;16)?"), (np.full((32, 32), 0.5, np.float32), "TIFF", "F")],
)
def test_high_bit_depth_images_are_refused(tmp_path, array, file_format, mode):
    # Pillow's conversion to RGB clipped 16-bit values to 255 and turned floats into 0.
    _cifar_jpeg_tree(tmp_path, "test", per_class=1)
    bad = tmp_path / "test" / "ship" / "0001.png"  # Pillow reads the content, not the suffix
    Image.fromarray(array).save(bad, format=file_format)
    with pytest.raises(ValueError, match=re.escape(str(bad)) + f" is a '{mode}' image"):
        load_cifar10(tmp_path, subset="test")


def test_load_utkface_lists_symlink_loops_and_ignores_hidden_files(tmp_path):
    good = "25_0_1_20170116174525125.jpg.chip.jpg"
    _save_jpeg(tmp_path / good, (0, 0, 0))
    (tmp_path / "._25_0_1_20170116174525125.jpg.chip.jpg").write_bytes(b"\x00\x05\x16\x07")
    loop = tmp_path / "30_1_2_20170116174525125.jpg.chip.jpg"
    loop.symlink_to(loop.name)  # a link to itself: a loop
    with pytest.warns(UserWarning, match=r"skipped 1 file.*30_1_2_"):
        data = load_utkface(tmp_path)
    assert data.filenames == [good]
    assert [n for n, _ in data.skipped] == [loop.name]
    assert "loop" in data.skipped[0][1]


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("data", lambda d: np.where(np.arange(d.size).reshape(d.shape) == 5, 300, d.astype(np.int64)), r"'data'.*0\.\.255.*300"),
        ("data", lambda d: d.astype(np.float64) / 255, r"'data'.*integers.*float64"),
        ("data", lambda d: d.tolist()[:-1] + [[0.5] * d.shape[1]], r"'data'.*integers"),
        ("labels", lambda l: l[:-1] + [12], r"'labels'.*0\.\.9.*12"),
        ("labels", lambda l: [-3] + l[1:], r"'labels'.*0\.\.9.*-3"),
        ("labels", lambda l: [float(v) for v in l], r"'labels'.*integers"),
    ],
)
def test_load_cifar10_batches_refuse_values_they_would_mangle(tmp_path, key, value, match):
    _write_batches(tmp_path, protocol=2, bytes_keys=False, per_batch=3)
    with open(tmp_path / "test_batch", "rb") as f:
        batch = pickle.load(f)
    batch[key] = value(batch[key])
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "test_batch")) + ".*" + match):
        load_cifar10(tmp_path, subset="test")


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
