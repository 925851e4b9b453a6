"""load_image: every mode comes out RGB and right, from a file, bytes or a PIL image; bad files raise BadImage
with the right reason; ImagePreprocessing: today's tensors for ordinary photos, cheap ones for extreme shapes."""
import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from mri.data.images import (
    BAD_IMAGE_REASONS,
    IMAGE_SUFFIXES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BadImage,
    ImagePreprocessing,
    ImageReport,
    captioner_preprocessing,
    image_paths,
    load_image,
    read_header,
)


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


def encoded(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A random RGB picture of (width, height) = size, smooth enough that JPEG keeps it recognisable."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(size[1] // 8, 1), max(size[0] // 8, 1), 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def test_bytes_and_pil_images_read_like_their_file(tmp_path):
    im = noise((64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the EXIF turn is applied from bytes and PIL images too
    for fmt, kwargs in (("JPEG", {"quality": 90, "exif": exif}), ("PNG", {}), ("WEBP", {"lossless": True})):
        data = encoded(im, fmt, **kwargs)
        path = tmp_path / f"a.{fmt.lower()}"
        path.write_bytes(data)
        from_file = np.asarray(load_image(path))
        assert np.array_equal(np.asarray(load_image(data)), from_file), fmt
        assert np.array_equal(np.asarray(load_image(Image.open(io.BytesIO(data)))), from_file), fmt
    assert load_image(data).size == (64, 48) and from_file.shape == (48, 64, 3)
    assert load_image(encoded(im, "JPEG", exif=exif)).size == (48, 64)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"<html>404 Not Found</html>\n", "not_image"),
    ("truncated", "corrupt"),
    ("bomb", "too_large"),
])
def test_unusable_bytes(data, reason):
    data = {"truncated": encoded(noise((64, 64)), "PNG")[:300], "bomb": png_bomb(8_000, 8_000)}.get(data, data)
    with pytest.raises(BadImage) as e:
        load_image(data)
    assert e.value.reason == reason
    with pytest.raises(BadImage, match="too_large"):
        load_image(Image.new("RGB", (100, 100)), max_pixels=1000)


def test_mpo_gives_its_first_frame_like_a_jpeg():
    first, second = noise((160, 120), 1), noise((160, 120), 2)
    mpo = encoded(first, "MPO", save_all=True, append_images=[second], quality=90)  # what phones and cameras write
    jpeg = encoded(first, "JPEG", quality=90)
    assert read_header(mpo, formats=("JPEG", "PNG", "WEBP")) == ("MPO", 160, 120)
    assert np.array_equal(np.asarray(load_image(mpo)), np.asarray(load_image(jpeg)))


def test_image_paths_of_a_folder(tmp_path):
    for name in ("b.JPG", "a.png", "c.tiff", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d.jpg").mkdir()
    (tmp_path / "e.jpg").symlink_to(tmp_path / "nowhere.jpg")
    images, skipped = image_paths(tmp_path)
    assert images == [tmp_path / "a.png", tmp_path / "b.JPG", tmp_path / "c.tiff"]
    assert [(p.name, why.split(" (")[0]) for p, why in skipped] == [
        ("d.jpg", "a folder"), ("e.jpg", "a link to nothing"), ("notes.txt", "not an image file name")]
    assert image_paths(tmp_path / "a.png") == ([tmp_path / "a.png"], []) and ".webp" in IMAGE_SUFFIXES
    with pytest.raises(FileNotFoundError, match="does not exist: pass a photo or a folder of photos"):
        image_paths(tmp_path / "none")


def test_unreadable_files_are_named(tmp_path, monkeypatch):
    (tmp_path / "locked.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "open.jpg").write_bytes(b"\xff\xd8\xff")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p).name != "locked.jpg" and real_access(p, mode))
    images, skipped = image_paths(tmp_path)  # (chmod 000 does not stop root, who runs the CI)
    assert images == [tmp_path / "open.jpg"] and skipped == [(tmp_path / "locked.jpg", "not readable (no permission)")]


def resize_then_crop(p: ImagePreprocessing, image: Image.Image) -> torch.Tensor:
    """The whole image resized, then centre-cropped: what ImagePreprocessing computed for every image before."""
    image = TF.center_crop(TF.resize(image, p.resize, InterpolationMode(p.interpolation), antialias=True), p.crop)
    return TF.normalize(TF.to_tensor(image), p.mean, p.std)


ORDINARY = [(160, 120), (120, 160), (1600, 1200), (4032, 3024), (1080, 2400), (3000, 800), (640, 640), (48, 36)]


@pytest.mark.parametrize("size", ORDINARY)
def test_ordinary_photos_give_the_tensors_of_before(size):
    im = noise(size)
    before = transforms.Compose([transforms.Resize(128, antialias=True), transforms.CenterCrop(128),
                                 transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    assert torch.equal(captioner_preprocessing(128)(im), before(im))  # the captioner's transform until now
    default = ImagePreprocessing()
    assert torch.equal(default(im), resize_then_crop(default, im))


@pytest.mark.parametrize("size", [(2000, 20), (20, 2000), (900, 200), (3, 5000), (5000, 3)])
def test_extreme_shapes_resample_only_the_crop_and_look_the_same(size):
    """Beyond 4:1 only the pixels under the crop are resampled: within a rounding of the whole resize."""
    im = noise(size)
    for p in (captioner_preprocessing(128), ImagePreprocessing()):
        got, whole = p(im), resize_then_crop(p, im)
        assert got.shape == whole.shape == (3, p.crop, p.crop)
        error = (got - whole).abs() * torch.tensor(p.std)[:, None, None]  # in [0, 1] pixel units
        assert error.mean() < 0.003 and error.max() < 0.05, (size, p.interpolation)


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000)])
def test_a_line_of_pixels_is_one_crop(size):
    """A 144-byte PNG of 20000 x 1 once became a 2,560,000 x 128 resize (1.3 GB): now a crop-sized one."""
    line = Image.new("RGB", size, (200, 100, 50))
    line.putpixel((size[0] // 2, size[1] // 2), (0, 0, 255))  # the middle pixel, under the crop
    data = encoded(line, "PNG")
    assert len(data) < 200
    x = captioner_preprocessing(128)(load_image(data))
    assert x.shape == (3, 128, 128)
    colours = x * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
    assert colours[2].max() > 0.6  # the blue pixel, stretched over the crop
    assert torch.allclose(colours[:, 0, 0], torch.tensor([200, 100, 50]) / 255, atol=0.01)


def test_preprocessing_is_plain_hashable_data():
    p = ImagePreprocessing(**{**ImagePreprocessing().to_dict(), "mean": [0.5, 0.5, 0.5]})  # as a checkpoint gives it
    assert p == ImagePreprocessing() and hash(p) == hash(ImagePreprocessing())
    with pytest.raises(ValueError, match="crop=300"):
        ImagePreprocessing(resize=256, crop=300)


REAL_PHOTO = Path(__file__).resolve().parents[1] / "experiments" / "real_photos" / "photos" / "dune.jpg"


@pytest.mark.parametrize("size, decoded", [((4032, 3024), (504, 378)), ((2048, 1536), (512, 384)),
                                           ((1080, 2400), (270, 600)), ((500, 375), (500, 375))])
def test_a_large_jpeg_is_decoded_at_the_scale_its_preprocessing_needs(size, decoded):
    """A phone photo is decoded at 1/2..1/8 scale, both sides staying >= resize; the tensor is the whole decode's
    to within JPEG's rounding. A photo under twice the resize is decoded whole."""
    photo = encoded(Image.open(REAL_PHOTO).convert("RGB").resize(size, Image.Resampling.BICUBIC), "JPEG", quality=92)
    p = ImagePreprocessing()
    reduced, whole = load_image(photo, min_side=p.resize), load_image(photo)
    assert reduced.size == decoded and whole.size == size
    error = (p.read(photo) - p(whole)).abs() * torch.tensor(p.std)[:, None, None]  # in [0, 1] pixel units
    assert error.mean() < 0.01 and error.max() < 0.15, size
    assert load_image(encoded(whole, "PNG"), min_side=p.resize).size == size  # other formats: decoded whole


def test_a_reduced_decode_keeps_the_exif_rotation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    photo = encoded(noise((2048, 1024)), "JPEG", exif=exif, quality=90)
    assert load_image(photo, min_side=256).size == (256, 512)
