"""--skip-bad-images: undecodable files are found and dropped, good ones kept."""
from PIL import Image

from dualref.datasets.verify import drop_unreadable, readable, skip_bad_images


def _images(tmp_path):
    good = tmp_path / "0001_c1s1_000001_00.jpg"
    Image.new("RGB", (16, 32), (200, 10, 10)).save(good)
    truncated = tmp_path / "0001_c2s1_000002_00.jpg"
    truncated.write_bytes(good.read_bytes()[:40])
    garbage = tmp_path / "0002_c1s1_000003_00.jpg"
    garbage.write_bytes(b"not an image")
    return str(good), str(truncated), str(garbage)


def test_readable_tells_good_from_truncated_and_garbage(tmp_path):
    good, truncated, garbage = _images(tmp_path)
    assert readable(good) and not readable(truncated) and not readable(garbage)
    assert not readable(str(tmp_path / "missing.jpg"))


def test_skip_bad_images_filters_every_split(tmp_path):
    good, truncated, garbage = _images(tmp_path)

    class Data:
        train = [(good, 0, 0), (truncated, 0, 1)]
        query = [(garbage, 2, 0)]
        gallery = [(good, 1, 1)]

    data = Data()
    assert skip_bad_images(data) == 2
    assert data.train == [(good, 0, 0)] and data.query == [] and data.gallery == [(good, 1, 1)]
    kept, bad = drop_unreadable([(good, 0, 0)])
    assert kept == [(good, 0, 0)] and bad == []
