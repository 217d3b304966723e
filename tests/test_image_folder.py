"""transform_image_folder: a folder of image files protected a chunk at a time into PNGs."""

import numpy as np
import pytest


class _Invert:
    """A stand-in image protector: inverts the levels and records its chunk sizes."""

    def __init__(self):
        self.calls = []

    def transform(self, images):
        self.calls.append([image.shape for image in images])
        return [255 - image for image in images]


def test_transform_image_folder_writes_protected_pngs_a_chunk_at_a_time(tmp_path):
    from PIL import Image

    from sklearn_privacy.utils import transform_image_folder

    rng = np.random.RandomState(0)
    source = tmp_path / "photos"
    source.mkdir()
    images = {}
    for i, size in enumerate([(5, 7), (6, 4), (5, 7), (3, 3), (8, 2)]):
        image = rng.randint(0, 256, size=(*size, 3)).astype(np.uint8)
        images[f"img{i}"] = image
        # PNG and BMP are lossless: the levels read back are the ones saved
        Image.fromarray(image).save(source / (f"img{i}.png" if i % 2 else f"img{i}.bmp"))
    (source / "notes.txt").write_text("not an image")
    Image.fromarray(images["img0"][:, :, 0]).save(source / "gray.png")  # read as RGB
    protector = _Invert()
    written = transform_image_folder(protector, source, tmp_path / "out", chunk_size=2)
    assert [p.name for p in written] == ["gray.png"] + [f"img{i}.png" for i in range(5)]
    assert [len(call) for call in protector.calls] == [2, 2, 2]
    for name, image in images.items():
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"{name}.png")),
                                      255 - image)
    gray = np.asarray(Image.open(tmp_path / "out" / "gray.png"))
    assert gray.shape == (5, 7, 3) and np.array_equal(gray[:, :, 1], 255 - images["img0"][:, :, 0])


def test_transform_image_folder_errors(tmp_path):
    from PIL import Image

    from sklearn_privacy.utils import transform_image_folder

    with pytest.raises(FileNotFoundError, match="No folder"):
        transform_image_folder(_Invert(), tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ValueError, match="holds no image file"):
        transform_image_folder(_Invert(), tmp_path, tmp_path / "out")
    image = np.zeros((4, 4, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="must differ from input_dir"):
        transform_image_folder(_Invert(), tmp_path, tmp_path)
    with pytest.raises(ValueError, match="chunk_size"):
        transform_image_folder(_Invert(), tmp_path, tmp_path / "out", chunk_size=0)

    class Floats:
        def transform(self, images):
            return [im / 255.0 for im in images]

    with pytest.raises(ValueError, match="expected uint8"):
        transform_image_folder(Floats(), tmp_path, tmp_path / "out")
    Image.fromarray(image).save(tmp_path / "a.bmp")
    with pytest.raises(ValueError, match="a.bmp and a.png would both be written to a.png"):
        transform_image_folder(_Invert(), tmp_path, tmp_path / "out")
