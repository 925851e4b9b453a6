"""load_image: every mode comes out RGB and right; bad files raise BadImage with the right reason."""
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from mri.data.images import BAD_IMAGE_REASONS, BadImage, ImageReport, load_image


def save(im: Image.Image, path, **kwargs):
    im.save(path, **kwargs)
    return path


def pixel(path, xy=(0, 0)):
    im = load_image(path)
    assert im.mode == "RGB"
    return im.getpixel(xy)


def test_rgb_formats(tmp_path):
    im = Image.new("RGB", (20, 10), (200, 30, 40))
    for ext in ("jpg", "png", "webp", "bmp", "gif"):
        got = pixel(save(im, tmp_path / f"a.{ext}"))
        assert np.abs(np.subtract(got, (200, 30, 40))).max() < 12, ext


def test_grayscale_palette_and_cmyk(tmp_path):
    assert pixel(save(Image.new("L", (8, 8), 90), tmp_path / "l.png")) == (90, 90, 90)
    assert pixel(save(Image.new("1", (8, 8), 1), tmp_path / "bw.png")) == (255, 255, 255)
    palette = Image.new("RGB", (8, 8), (10, 120, 250)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert pixel(save(palette, tmp_path / "p.png")) == (10, 120, 250)
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    r, g, b = pixel(save(cmyk, tmp_path / "cmyk.jpg", quality=95))
    assert r > 230 and g < 25 and b < 25


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((1, 1), (255, 0, 0, 255))
    path = save(rgba, tmp_path / "rgba.png")
    assert pixel(path) == (255, 255, 255) and pixel(path, (1, 1)) == (255, 0, 0)
    half = save(Image.new("LA", (8, 8), (0, 128)), tmp_path / "la.png")  # black at half opacity
    assert all(126 <= v <= 128 for v in pixel(half))
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 0, 255, 0])
    palette.info["transparency"] = 0
    assert pixel(save(palette, tmp_path / "pt.png", transparency=0)) == (255, 255, 255)


def test_16_bit_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    path = save(Image.fromarray(a), tmp_path / "g16.png")
    assert Image.open(path).mode in ("I;16", "I")
    assert [pixel(path, (x, 0))[0] for x in range(3)] == [0, 128, 255]
    i32 = save(Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32), "I"), tmp_path / "i32.tif")
    assert [pixel(i32, (x, 0))[0] for x in range(3)] == [0, 4, 255]


def test_exif_rotation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 10, 20))  # red band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    path = save(im, tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (20, 40)
    assert out.getpixel((10, 2))[0] > 200  # the left band is now on top


@pytest.mark.parametrize("name, content, reason", [
    ("empty.jpg", b"", "empty"),
    ("text.jpg", b"<html>404 Not Found</html>\n", "not_image"),
    ("absent.jpg", None, "missing"),
])
def test_unusable_files(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadImage) as e:
        load_image(path)
    assert e.value.reason == reason


def test_truncated_jpeg_is_corrupt(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImage) as e:
        load_image(path)
    assert e.value.reason == "corrupt"


def png_bomb(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height grayscale pixels (the data is one row)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [8_000, 12_000, 40_000])  # 64 MP (ours), 144 MP (PIL warns), 1.6 GP (PIL errs)
def test_decompression_bomb_is_refused_from_the_header(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(side, side))
    assert path.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning escapes either
        with pytest.raises(BadImage) as e:
            load_image(path)
    assert e.value.reason == "too_large"
    with pytest.raises(BadImage, match="too_large"):
        load_image(path, max_pixels=1000)


def test_image_report_round_trip(tmp_path):
    report = ImageReport()
    report.add("a.jpg", "corrupt", "truncated")
    report.add("b.jpg", "missing")
    other = ImageReport()
    other.add("c.jpg", "corrupt")
    report.merge(other)
    assert report.counts == {**dict.fromkeys(BAD_IMAGE_REASONS, 0), "corrupt": 2, "missing": 1}
    assert report.n_skipped == 3 and report.items("corrupt") == ["a.jpg", "c.jpg"]
    report.write(tmp_path / "r.json")
    back = ImageReport.read(tmp_path / "r.json")
    assert back.counts == report.counts and back.entries == report.entries
    assert "corrupt 2" in report.summary()
    with pytest.raises(ValueError, match="too_large"):
        report.add("d.jpg", "blurry")
