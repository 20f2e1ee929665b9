"""Tests for engine.runtime.imageio. Every file is generated in tmp_path with Pillow or zlib."""

import errno
import hashlib
import io
import os
import stat
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from pngtext import read_png_text

from engine.runtime import imageio
from engine.runtime.errors import ImageError, MageError, MaskError, OutputError
from engine.runtime.imageio import (
    LoadedImage,
    file_digest,
    load_image,
    load_mask,
    save_png,
)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def one_line(error):
    text = str(error.value)
    assert text
    assert "\n" not in text
    assert "Traceback" not in text
    return text


def gradient(width=32, height=24):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 7 % 256, y * 11 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)


def write_png16_rgb(path, values):
    """A 16-bit RGB PNG written by hand (Pillow cannot write 48-bit colour)."""
    height, width, _ = values.shape
    raw = b"".join(b"\x00" + values[row].astype(">u2").tobytes() for row in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    with open(path, "wb") as stream:
        stream.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        )


def expect_error(path, match, cls=ImageError, loader=load_image):
    before = sha(path) if os.path.isfile(path) else None
    with pytest.raises(cls) as error:
        loader(path)
    text = one_line(error)
    assert match in text, text
    if before is not None:
        assert sha(path) == before  # loading never touches the file
    return text


# --- plain loads -----------------------------------------------------------------------------


def test_png_rgb_roundtrip(tmp_path):
    rgb = gradient()
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.dtype == np.uint8
    assert loaded.rgb.shape == (24, 32, 3)
    assert np.array_equal(loaded.rgb, rgb)
    assert loaded.alpha is None
    assert loaded.format == "PNG"
    assert loaded.notices == []
    assert loaded.path == str(path)
    assert loaded.size == (32, 24)
    loaded.rgb[0, 0] = 1  # the result is writable


def test_jpeg_load(tmp_path):
    path = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path, quality=95)
    loaded = load_image(str(path))
    assert loaded.format == "JPEG"
    assert loaded.notices == []
    assert np.abs(loaded.rgb.astype(int) - [200, 100, 50]).max() <= 3


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (15, 15)])
def test_tiny_images_load(tmp_path, size):
    path = tmp_path / "tiny.png"
    Image.new("RGB", size, (1, 2, 3)).save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (size[1], size[0], 3)
    assert (loaded.rgb == [1, 2, 3]).all()


def test_content_wins_over_extension(tmp_path):
    path = tmp_path / "really_png.jpg"
    Image.fromarray(gradient()).save(path, format="PNG")
    loaded = load_image(path)
    assert loaded.format == "PNG"
    assert np.array_equal(loaded.rgb, gradient())
    assert len(loaded.notices) == 1
    assert ".jpg" in loaded.notices[0]
    assert "PNG" in loaded.notices[0]


def test_unknown_extension_gives_no_notice(tmp_path):
    path = tmp_path / "picture.data"
    Image.fromarray(gradient()).save(path, format="PNG")
    assert load_image(path).notices == []


# --- modes -----------------------------------------------------------------------------------


def test_exif_orientation_applied(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:5, :5] = [255, 0, 0]
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = tmp_path / "rot.png"
    image.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.rgb.shape == (20, 10, 3)
    assert np.array_equal(loaded.rgb, np.rot90(rgb, k=-1))


def test_gray16_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32896, 65535]], np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    loaded = load_image(path)
    assert loaded.rgb[0, :, 0].tolist() == [0, 1, 4, 128, 255]
    assert (loaded.rgb[..., 0] == loaded.rgb[..., 2]).all()


def test_rgb16_png(tmp_path):
    values = np.zeros((2, 3, 3), np.uint16)
    values[0, 0] = [65535, 0, 0x1234]
    values[1, 2] = [0x8080, 0xFFFF, 0x0101]
    path = tmp_path / "rgb16.png"
    write_png16_rgb(path, values)
    loaded = load_image(path)
    expected = np.rint(values / 257.0)
    assert np.abs(loaded.rgb.astype(int) - expected).max() <= 1
    assert loaded.rgb[0, 0].tolist()[0] == 255


def test_int32_in_16bit_range_and_stretched(tmp_path):
    path = tmp_path / "i.tif"
    Image.fromarray(np.array([[0, 65535]], np.int32)).save(path)
    assert load_image(path).rgb[0, :, 0].tolist() == [0, 255]
    path2 = tmp_path / "i2.tif"
    Image.fromarray(np.array([[-100, 0, 100000]], np.int32)).save(path2)
    loaded = load_image(path2)
    assert loaded.rgb[0, :, 0].tolist() == [0, 0, 255]
    assert any("stretched" in n for n in loaded.notices)


def test_float_tiff(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(path)
    assert load_image(path).rgb[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_to_rgb(tmp_path):
    path = tmp_path / "c.tif"
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(path)
    loaded = load_image(path)
    assert (loaded.rgb == [255, 0, 0]).all()
    assert loaded.alpha is None


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(path, quality=95)
    assert (load_image(path).rgb >= 250).all()


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 2), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0
    path = tmp_path / "p.png"
    image.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.alpha is not None
    assert loaded.alpha[0, 1] == 255
    assert loaded.alpha[0, 0] == 0
    assert loaded.alpha[1, 3] == 0
    assert loaded.rgb[0, 1].tolist() == [200, 100, 50]


def test_palette_without_transparency(tmp_path):
    image = Image.new("P", (2, 2), 1)
    image.putpalette([0, 0, 0, 9, 8, 7] + [0] * 762)
    path = tmp_path / "p.png"
    image.save(path)
    loaded = load_image(path)
    assert loaded.alpha is None
    assert (loaded.rgb == [9, 8, 7]).all()


def test_la_gives_rgb_and_alpha(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(
        np.dstack([np.full((3, 3), 77, np.uint8), np.array([[0, 128, 255]] * 3, np.uint8)]), "LA"
    ).save(path)
    loaded = load_image(path)
    assert (loaded.rgb == 77).all()
    assert loaded.alpha is not None
    assert loaded.alpha[0].tolist() == [0, 128, 255]


def test_rgba_opaque_has_no_alpha_and_transparent_has(tmp_path):
    path = tmp_path / "o.png"
    Image.new("RGBA", (4, 4), (1, 2, 3, 255)).save(path)
    assert load_image(path).alpha is None
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 50
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(path)
    loaded = load_image(path)
    assert loaded.alpha is not None
    assert loaded.alpha[0, 0] == 10
    assert loaded.alpha[3, 3] == 255
    assert (loaded.rgb == 50).all()


def test_one_bit(tmp_path):
    image = Image.new("1", (3, 1), 0)
    image.putpixel((1, 0), 1)
    path = tmp_path / "b.png"
    image.save(path)
    assert load_image(path).rgb[0, :, 0].tolist() == [0, 255, 0]


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), color) for color in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    loaded = load_image(path)
    assert (loaded.rgb == [255, 0, 0]).all()
    assert loaded.notices == ["animated GIF: using the first of 3 frames"]


def test_animated_webp_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), color) for color in [(250, 0, 0), (0, 250, 0)]]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True)
    loaded = load_image(path)
    assert np.abs(loaded.rgb.astype(int) - [250, 0, 0]).max() <= 2
    assert loaded.notices == ["animated WEBP: using the first of 2 frames"]


def test_multipage_tiff_notice(tmp_path):
    pages = [Image.new("L", (4, 4), v) for v in (10, 20)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    loaded = load_image(path)
    assert (loaded.rgb == 10).all()
    assert loaded.notices == ["multi-page TIFF: using the first of 2 pages"]


# --- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.png", "file not found")


def test_folder_instead_of_file(tmp_path):
    expect_error(tmp_path, "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    expect_error(path, "empty")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, this is text\n" * 20)
    expect_error(path, "not an image")


def test_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.new("RGB", (2, 2)).save(path)

    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(imageio.os, "open", deny)  # root reads any file: deny the open
    expect_error(path, "permission denied")


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated or damaged")


def test_png_cut_inside_header(tmp_path):
    path = tmp_path / "h.png"
    Image.fromarray(gradient()).save(path)
    path.write_bytes(path.read_bytes()[:20])
    expect_error(path, "truncated or damaged")


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "t.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated or damaged")


def test_corrupted_png_data(tmp_path):
    path = tmp_path / "c.png"
    Image.fromarray(gradient(64, 64)).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = b"\x00" * 40
    path.write_bytes(bytes(data))
    expect_error(path, "truncated or damaged")


def test_decompression_bomb_error(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (50, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    text = expect_error(path, "2,500 pixels")
    assert "limit of 2,000" in text


def test_decompression_bomb_warning_zone_loads_with_notice(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    loaded = load_image(path)
    assert loaded.rgb.shape == (40, 40, 3)
    assert loaded.notices == ["very large image: 40x40 (0 megapixels)"]


def test_heic_is_unsupported(tmp_path):
    path = tmp_path / "photo.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200)
    expect_error(path, "unsupported image format (HEIC)")


def test_mask_errors_are_mask_errors(tmp_path):
    expect_error(tmp_path / "none.png", "Cannot load mask", cls=MaskError, loader=load_mask)


# --- huge ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_huge_image_loads_with_bounded_copies(tmp_path):
    import tracemalloc

    path = tmp_path / "huge.jpg"
    Image.new("RGB", (12000, 9000), (10, 20, 30)).save(path, quality=50)
    tracemalloc.start()
    try:
        loaded = load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = 12000 * 9000 * 3
    assert loaded.rgb.shape == (9000, 12000, 3)
    # NumPy side: the result plus one band, not several full copies.
    assert peak < size * 1.2
    assert any("very large" in n for n in loaded.notices)


# --- masks -----------------------------------------------------------------------------------


def test_mask_binary_and_threshold(tmp_path):
    gray = np.array([[0, 127, 128, 255]], np.uint8)
    path = tmp_path / "m.png"
    Image.fromarray(gray).save(path)
    assert load_mask(path).tolist() == [[False, False, True, True]]


def test_mask_zero_one_values(tmp_path):
    path = tmp_path / "m01.png"
    Image.fromarray(np.array([[0, 1, 1, 0]], np.uint8)).save(path)
    assert load_mask(path).tolist() == [[False, True, True, False]]


def test_mask_uses_alpha_when_not_opaque(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)  # black strokes on a transparent layer
    rgba[0, 1, 3] = 255
    rgba[1, 2, 3] = 200
    path = tmp_path / "ma.png"
    Image.fromarray(rgba).save(path)
    assert load_mask(path).tolist() == [[False, True, False], [False, False, True]]


def test_mask_uses_luminance_when_alpha_opaque(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 1, :3] = 255
    rgba[0, 2, :3] = [255, 0, 0]  # luma 76: below half
    path = tmp_path / "mo.png"
    Image.fromarray(rgba).save(path)
    assert load_mask(path).tolist() == [[False, True, False]]


def test_mask_16bit(tmp_path):
    path = tmp_path / "m16.png"
    Image.fromarray(np.array([[0, 30000, 40000, 65535]], np.uint16)).save(path)
    assert load_mask(path).tolist() == [[False, False, True, True]]


def test_mask_size_mismatch_and_scaling(tmp_path):
    mask = np.zeros((4, 8), np.uint8)
    mask[:, :4] = 255
    path = tmp_path / "small.png"
    Image.fromarray(mask).save(path)
    assert load_mask(path, size=(8, 4)).shape == (4, 8)
    with pytest.raises(MaskError) as error:
        load_mask(path, size=(16, 8))
    text = one_line(error)
    assert "8x4" in text
    assert "16x8" in text
    scaled = load_mask(path, size=(16, 8), scale=True)
    assert scaled.shape == (8, 16)
    assert scaled[:, :8].all()
    assert not scaled[:, 8:].any()


# --- saving ----------------------------------------------------------------------------------


def test_save_roundtrip_with_alpha_and_text(tmp_path):
    path = tmp_path / "out.png"
    rgb = gradient()
    alpha = np.full(rgb.shape[:2], 200, np.uint8)
    text = {"seed": "42", "prompt": "naïve café", "note": "snow ☃ unicode"}
    save_png(path, rgb, alpha, text)
    loaded = load_image(path)
    assert np.array_equal(loaded.rgb, rgb)
    assert loaded.alpha is not None
    assert np.array_equal(loaded.alpha, alpha)
    assert read_png_text(path) == text
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    save_png(str(path), gradient())
    assert np.array_equal(load_image(path).rgb, gradient())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_save_missing_folder(tmp_path):
    with pytest.raises(OutputError) as error:
        save_png(tmp_path / "no" / "out.png", gradient())
    assert "does not exist" in one_line(error)


def test_save_onto_folder(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError) as error:
        save_png(tmp_path / "dir.png", gradient())
    assert "folder" in one_line(error)


@pytest.mark.parametrize("where", ["save", "fsync"])
def test_save_disk_full_keeps_target(tmp_path, monkeypatch, where):
    path = tmp_path / "out.png"
    path.write_bytes(b"previous result")

    def full(*args, **kwargs):
        if where == "save":
            args[1].write(b"partial data")  # (self, fp, ...)
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "save":
        monkeypatch.setattr(Image.Image, "save", full)
    else:
        monkeypatch.setattr(imageio.os, "fsync", full)
    with pytest.raises(OutputError) as error:
        save_png(path, gradient())
    assert "disk is full" in one_line(error)
    assert path.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_save_read_only_folder_via_monkeypatch(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(imageio.os, "open", read_only)
    with pytest.raises(OutputError) as error:
        save_png(tmp_path / "out.png", gradient())
    assert "read-only" in one_line(error)
    assert list(tmp_path.iterdir()) == []


def test_save_interrupted_removes_temp(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_png(tmp_path / "out.png", gradient())
    assert list(tmp_path.iterdir()) == []


def test_save_validates_arrays(tmp_path):
    with pytest.raises(ValueError, match="rgb must be uint8"):
        save_png(tmp_path / "a.png", gradient().astype(np.float32))
    with pytest.raises(ValueError, match="alpha must be uint8"):
        save_png(tmp_path / "a.png", gradient(), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="PNG text keys must be 1-79 characters"):
        save_png(tmp_path / "a.png", gradient(), text={"": "x"})
    assert list(tmp_path.iterdir()) == []


def test_file_digest(tmp_path):
    path = tmp_path / "x.bin"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(MageError) as error:
        file_digest(tmp_path / "missing")
    assert "missing" in one_line(error)


def test_save_png_to_bytes_matches_pillow_decode(tmp_path):
    path = tmp_path / "c.png"
    rgb = gradient(7, 5)
    save_png(path, rgb)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(path.read_bytes()))), rgb)


# --- files that are not regular files: refused at once, never a hang ---------------------------


def _special_files(tmp_path):
    """A FIFO with no writer (reading it would block for ever), a link to it, devices that
    read as endless zeros or nothing, and a socket."""
    import socket

    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    link = tmp_path / "link.png"
    link.symlink_to(fifo)
    sock_path = tmp_path / "s.png"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    return sock, [
        (fifo, "named pipe (FIFO)"),
        (link, "named pipe (FIFO)"),
        ("/dev/zero", "character device"),
        ("/dev/null", "character device"),
        (sock_path, "socket"),
    ]


def _within(seconds, call):
    """Runs `call` on a daemon thread: (finished, result or exception)."""
    import threading

    box = []

    def run():
        try:
            box.append(call())
        except Exception as error:  # noqa: BLE001 - handed back to the test
            box.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), (box[0] if box else None)


def test_fifos_devices_and_sockets_are_refused_in_one_line_without_blocking(tmp_path):
    sock, cases = _special_files(tmp_path)
    try:
        for path, kind in cases:
            for loader, cls in (
                (load_image, ImageError),
                (load_mask, MaskError),
                (file_digest, Exception),
            ):
                finished, outcome = _within(10, lambda loader=loader, path=path: loader(path))
                assert finished, f"{loader.__name__}({path}) blocked"
                assert isinstance(outcome, cls), (loader.__name__, path, outcome)
                text = str(outcome)
                assert kind in text
                assert "not a regular file" in text
                assert "\n" not in text
                assert "empty" not in text  # /dev/zero is a device, not an empty file
    finally:
        sock.close()


@pytest.mark.slow
def test_cli_refuses_a_fifo_as_image_or_mask(tmp_path, tiny_bundle_path):
    import subprocess
    import sys

    from conftest import REPO

    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), (90, 120, 30)).save(good)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for image, mask in ((fifo, good), (good, fifo), ("/dev/zero", good)):
        out = tmp_path / "out.png"
        run = subprocess.run(
            [
                sys.executable,
                str(REPO / "main.py"),
                "edit",
                str(image),
                "--mask",
                str(mask),
                "-o",
                str(out),
                "--model",
                str(tiny_bundle_path),
                "--device",
                "cpu",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode != 0
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert "Traceback" not in run.stderr
        assert any("not a regular file" in line for line in lines), run.stderr
        assert not out.exists()


def test_the_size_limit_the_readme_states_is_the_real_one(tmp_path):
    """20000x15000 is refused in one line before any pixel is decoded, at the limit the
    README gives."""
    from conftest import REPO

    def header_only_png(width, height):
        def chunk(kind, data):
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            )

        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b"")
        )

    assert Image.MAX_IMAGE_PIXELS is not None
    limit = 2 * Image.MAX_IMAGE_PIXELS
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"{limit:,} pixels" in readme
    assert "20000x15000" in readme
    path = tmp_path / "huge.png"
    path.write_bytes(header_only_png(20000, 15000))
    text = expect_error(path, f"over the safety limit of {limit:,} pixels")
    assert "300,000,000 pixels" in text
    path.write_bytes(header_only_png(13400, 13350))  # under the limit: only truncated
    expect_error(path, "truncated")


def test_overwriting_a_png_keeps_its_permissions(tmp_path):
    target = tmp_path / "out.png"
    rgb = np.zeros((4, 4, 3), np.uint8)
    save_png(target, rgb)
    os.chmod(target, 0o600)
    save_png(target, rgb + 1)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert np.asarray(Image.open(target))[0, 0, 0] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
