"""The web page: its API through FastAPI's TestClient, and the page itself in headless Chromium, on tiny trained
models."""
import io
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mri.serve.background import BackgroundServer
from mri.serve.browser import chromium_page, find_chromium
from mri.serve.command import app_from_config
from mri.serve.mel_picture import MAGMA, PICTURE_SIZE, colourize, mel_picture
from mri.serve.server import ServerLimits
from tests.conftest import recommend_cfg

REPO = Path(__file__).resolve().parents[1]
needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium: `apt-get install -y chromium` (.ci/run installs it)")


@pytest.fixture(scope="module")
def index_dir(trained, tmp_path_factory):
    return tmp_path_factory.mktemp("serve") / "index"


def serve_app(trained, tmp_path, index_dir, *overrides):
    """serve.yaml's app on the tiny checkpoints; the first one builds the index."""
    build = [] if index_dir.is_dir() else ["build_index=true"]
    return app_from_config(recommend_cfg(trained, tmp_path, f"index_dir={index_dir}", "examples.size=[160,120]",
                                         *build, *overrides, config_name="serve"))


@pytest.fixture(scope="module")
def client(trained, tmp_path_factory, index_dir):
    with TestClient(serve_app(trained, tmp_path_factory.mktemp("run"), index_dir)) as client:
        yield client


@pytest.fixture(scope="module")
def strict_client(trained, tmp_path_factory, index_dir, client):
    """Limits small enough for small test files: 60 kB, 0.1 megapixels (needs the index the client built)."""
    app = serve_app(trained, tmp_path_factory.mktemp("run"), index_dir, "upload.max_bytes=60000",
                    "upload.max_pixels=100000")
    with TestClient(app) as client:
        yield client


@pytest.fixture
def photo(trained) -> bytes:
    """A generated test photo of the tiny Flickr data (JPEG)."""
    flickr = trained[3]
    return flickr.image_path(flickr.splits["test"][0][0]).read_bytes()


def encoded(size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, fmt)
    return buffer.getvalue()


def bad_header_checksum(png: bytes) -> bytes:
    """The PNG with its IHDR chunk's CRC (bytes 29..32) wrong."""
    crc = zlib.crc32(png[12:29]) ^ 0xFFFFFFFF
    return png[:29] + crc.to_bytes(4, "big") + png[33:]


BOUNDARY = "mri-test-boundary"


def form_body(disposition: bytes, data: bytes) -> bytes:
    """A multipart/form-data body of one part (boundary BOUNDARY), written by hand."""
    return (b"--%s\r\nContent-Disposition: %s\r\nContent-Type: image/jpeg\r\n\r\n%s\r\n--%s--\r\n"
            % (BOUNDARY.encode(), disposition, data, BOUNDARY.encode()))


def post(client, data: bytes, name: str = "photo.jpg"):
    return client.post("/api/recommend", files={"photo": (name, data, "application/octet-stream")})


@pytest.mark.slow
def test_page_info_and_examples(client):
    page = client.get("/")
    assert page.status_code == 200 and "drop a photo" in page.text.lower()
    info = client.get("/api/info").json()
    assert info["k"] == 10 and info["max_bytes"] == 20_000_000 and info["max_pixels"] == 25_000_000
    assert "summer_sea" in info["examples"] and len(info["examples"]) == 8
    example = client.get("/api/examples/summer_sea")
    assert example.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(example.content)).size == (160, 120)
    missing = client.get("/api/examples/moon")
    assert missing.status_code == 404 and "summer_sea" in missing.json()["detail"]


@pytest.mark.slow
def test_photo_to_songs_and_their_mel_pictures(client, photo):
    response = post(client, photo, "beach.jpg")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["path"] == "beach.jpg" and result["caption"]
    assert abs(sum(result["trail"]["weights"].values()) - 1) < 1e-4
    songs = result["songs"]
    assert len(songs) == 10 and all({"title", "artist", "genre", "score", "song_id"} <= set(s) for s in songs)
    assert [s["score"] for s in songs] == sorted((s["score"] for s in songs), reverse=True)
    mel = client.get(f"/api/mel/{songs[0]['song_id']}.png")
    assert mel.headers["content-type"] == "image/png" and Image.open(io.BytesIO(mel.content)).size == PICTURE_SIZE
    unknown = client.get("/api/mel/987654321.png")
    assert unknown.status_code == 404 and "song 987654321: missing" in unknown.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_are_answered(client, fmt):
    response = post(client, encoded((160, 120), fmt), f"photo.{fmt.lower()}")
    assert response.status_code == 200 and len(response.json()["songs"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize("data, status, words", [
    (b"just some notes", 415, "not a JPEG, PNG or WebP image"),
    (b"", 422, "The file is empty"),
    ("gif", 415, "not a JPEG, PNG or WebP image"),
    ("truncated", 422, "damaged or cut short"),
    ("bad_crc", 422, "damaged or cut short"),
])
def test_bad_uploads_are_refused_in_plain_words(client, photo, data, status, words):
    data = {"gif": encoded((16, 16), "GIF"), "truncated": photo[:len(photo) // 3],
            "bad_crc": bad_header_checksum(encoded((16, 16), "PNG"))}.get(data, data)
    response = post(client, data)
    assert response.status_code == status and words in response.json()["error"]
    assert post(client, photo).status_code == 200  # the server goes on


@pytest.mark.slow
def test_limits_hold_before_decoding(strict_client, photo):
    too_many_bytes = post(strict_client, photo + bytes(200_000))  # refused from Content-Length
    assert too_many_bytes.status_code == 413
    assert too_many_bytes.json()["error"].startswith("The file is 0.2 MB; the limit is 0.06 MB")
    too_many_pixels = post(strict_client, encoded((400, 300), "PNG"), "wide.png")  # small file, 0.12 MP
    assert too_many_pixels.status_code == 413 and "more than 0.1 megapixels" in too_many_pixels.json()["error"]
    assert post(strict_client, photo).status_code == 200


@pytest.mark.slow
def test_requests_without_a_photo_or_a_length(client):
    other_field = client.post("/api/recommend", files={"picture": ("a.jpg", b"x")})
    assert other_field.status_code == 400 and "form field 'photo'" in other_field.json()["error"]
    extra_field = client.post("/api/recommend", data={"note": "hi"}, files={"photo": ("a.jpg", b"x")})
    assert extra_field.status_code == 400 and "not understood" in extra_field.json()["error"]
    chunked = client.post("/api/recommend", content=iter([b"streamed ", b"without a length"]))
    assert chunked.status_code == 411 and "did not say its size" in chunked.json()["error"]


@pytest.mark.slow
def test_a_part_named_by_filename_star_alone_is_a_photo(client, photo):
    body = form_body(b"form-data; name=\"photo\"; filename*=UTF-8''%EC%97%AC%EB%A6%84.jpg", photo)  # 여름.jpg
    response = client.post("/api/recommend", content=body,
                           headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "여름.jpg" and len(response.json()["songs"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize("song_id", ["+1", "1_0", "01", "-1", "1e3", "%201", "\u0661", "1" * 19])
def test_song_ids_are_canonical_integers_only(client, song_id):
    response = client.get(f"/api/mel/{song_id}.png")
    assert response.status_code == 404 and response.json()["detail"].startswith("There is nothing at /api/mel/")


@pytest.mark.slow
def test_uploads_leave_nothing_in_the_temporary_folder(client, photo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert post(client, photo).status_code == 200
    assert post(client, b"not an image").status_code == 415
    assert post(client, photo[:len(photo) // 3]).status_code == 422
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def short_server(client):
    """The app on a real socket with one-second deadlines for headers and body."""
    with BackgroundServer(client.app, ServerLimits(header_timeout=1, body_timeout=1)) as server:
        yield server


def raw_request(server, head: bytes, body: bytes, hang_up: bool = False) -> bytes:
    """Send a request's head and body on a raw socket; everything the server answers until it closes."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        if hang_up:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def upload_head(length: int) -> bytes:
    return (b"POST /api/recommend HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=%s\r\n"
            b"content-length: %d\r\n\r\n" % (BOUNDARY.encode(), length))


@pytest.mark.slow
def test_lengths_that_do_not_match_the_body(short_server, photo, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    body = form_body(b'form-data; name="photo"; filename="a.jpg"', photo)
    shorter = raw_request(short_server, upload_head(len(body) - 100), body)  # the length stops inside the form
    assert shorter.startswith(b"HTTP/1.1 400 ") and b"Content-Length is shorter than the form" in shorter
    with caplog.at_level(logging.INFO):
        longer = raw_request(short_server, upload_head(len(body) + 100), body)  # the rest never comes
        assert longer.startswith(b"HTTP/1.1 408 ") and b"body did not arrive within 1 seconds" in longer
        raw_request(short_server, upload_head(len(body)), body[:len(body) // 2], hang_up=True)
        deadline = time.monotonic() + 10
        while sum("upload stopped" in r.message for r in caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    said = [(r.levelname, r.message) for r in caplog.records if r.name.startswith(("mri", "uvicorn"))]
    assert {level for level, _ in said} == {"INFO"}, said  # no ERROR, no traceback
    assert sum("upload stopped before its end" in m for _, m in said) == 2, said  # the 408 one and the hang-up
    assert list(tmp_path.iterdir()) == []
    with httpx.Client(base_url=short_server.url) as http:
        assert post(http, photo).status_code == 200  # the server goes on


@pytest.mark.slow
def test_an_mpo_photo_is_answered_like_its_jpeg(client, photo):
    image = Image.open(io.BytesIO(photo))
    as_mpo, as_jpeg = io.BytesIO(), io.BytesIO()
    image.save(as_mpo, "MPO", save_all=True, append_images=[image.rotate(90)], quality=90)  # as phones write them
    image.save(as_jpeg, "JPEG", quality=90)
    mpo, jpeg = post(client, as_mpo.getvalue(), "phone.jpg"), post(client, as_jpeg.getvalue(), "phone.jpg")
    assert mpo.status_code == 200, mpo.text
    assert mpo.json() == jpeg.json()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(20000, 1), (1, 20000)])
def test_a_line_of_pixels_is_answered(client, size):
    line = encoded(size, "PNG")
    assert len(line) < 200
    response = post(client, line, "line.png")
    assert response.status_code == 200 and len(response.json()["songs"]) == 10


@pytest.mark.slow
def test_photos_sent_together_get_their_one_at_a_time_answers(client, trained, tmp_path, index_dir):
    """Eight photos at once through a server that gathers them (200 ms window): the answers of one-by-one posts."""
    flickr = trained[3]
    photos = [flickr.image_path(name).read_bytes() for name, _ in flickr.splits["test"][:8]]
    alone = [post(client, p, f"{i}.jpg").json() for i, p in enumerate(photos)]
    app = serve_app(trained, tmp_path, index_dir, "batching.window_ms=200", "batching.max_batch=8")
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        def send(i):
            return http.post("/api/recommend", files={"photo": (f"{i}.jpg", photos[i])}).json()

        with ThreadPoolExecutor(len(photos)) as pool:
            together = list(pool.map(send, range(len(photos))))
    # the tagger's convolutions in a batch differ from one at a time in the last float digits
    def essentials(r):
        return r["path"], r["caption"], r["trail"]["keywords"], [s["song_id"] for s in r["songs"]]

    assert [essentials(r) for r in together] == [essentials(r) for r in alone]
    for t, a in zip(together, alone, strict=True):
        assert t["trail"]["weights"] == pytest.approx(a["trail"]["weights"], abs=1e-5)
    assert max(app.state.batcher.batch_sizes) > 1  # some did go through the models together


@pytest.mark.slow
def test_a_full_queue_gets_503_with_retry_after(trained, tmp_path, index_dir, photo, monkeypatch):
    app = serve_app(trained, tmp_path, index_dir, "batching.max_batch=1", "batching.window_ms=0",
                    "batching.max_queue=1", "batching.retry_after_s=2", "batching.workers=1")
    stage, running, release = app.state.recommender.stage, threading.Event(), threading.Event()
    describe = stage.describe

    def held(photos):  # the models busy until released
        running.set()
        release.wait(30)
        return describe(photos)

    monkeypatch.setattr(stage, "describe", held)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http, \
            ThreadPoolExecutor(2) as pool:
        def send():
            return http.post("/api/recommend", files={"photo": ("a.jpg", photo)})

        first = pool.submit(send)
        assert running.wait(30)
        second = pool.submit(send)
        deadline = time.monotonic() + 30
        while app.state.batcher.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = send()
        release.set()
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert "busy" in busy.json()["error"] and busy.json()["reason"] == "busy"
        assert first.result().status_code == 200 and second.result().status_code == 200


@pytest.mark.slow
def test_load_bench_small(client, trained, tmp_path, index_dir):
    """experiments/serve_load/bench.py in small: the page as `python serve.py`, 1 and 4 clients, the lines, memory."""
    _, data, ckpts, _ = trained
    out = tmp_path / "load.json"
    bench = "experiments/serve_load/bench.py"
    run = subprocess.run([sys.executable, bench, "--baseline", "none", "--clients", "1", "4", "--uploads", "4", "8",
                          "--memory-uploads", "12", "--size", "320", "240", "--photos", "4", "--json", str(out),
                          f"tag_mel_ckpt={ckpts['tag_mel']}", f"captioner_ckpt={ckpts['captioner']}",
                          f"index_dir={index_dir}", "examples.size=[160,120]"],
                         cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "MRI_DATA_DIR": str(data)})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(lv["clients"], lv["answered"], lv["errors"]) for lv in report["levels"]] == [(1, 4, 0), (4, 8, 0)]
    assert all(lv["photos_per_s"] > 0 and lv["p99_ms"] >= lv["p50_ms"] > 0 for lv in report["levels"])
    assert {k: v["status"] for k, v in report["servers"]["new"]["lines"].items()} == {"20000x1": 200, "1x20000": 200}
    assert report["memory"]["errors"] == 0 and report["memory"]["after_all_mb"] > 100
    assert "| 1 | " in run.stdout and "| 4 | " in run.stdout


def test_colour_map_ends_and_mel_picture_orientation():
    assert (colourize(np.array([0.0, 1.0, -3.0, 7.0])) == MAGMA[[0, -1, 0, -1]]).all()
    middle = colourize(np.array(0.5 / 8))  # half way between the first two anchors
    assert (middle == np.rint((MAGMA[0] + MAGMA[1]) / 2)).all()
    mel = np.full((48, 1876), -90.0, dtype=np.float32)
    mel[:8] = -20.0  # loud lowest bands
    picture = np.asarray(mel_picture(mel))  # (height, width, 3)
    assert picture.shape == (PICTURE_SIZE[1], PICTURE_SIZE[0], 3)
    assert picture[-1].sum() > picture[0].sum()  # low bands at the bottom, bright


@pytest.fixture(scope="module")
def server(client):
    with BackgroundServer(client.app) as server:
        yield server


@pytest.mark.slow
@needs_chromium
def test_browser_uploads_a_photo_and_reads_the_songs(server, trained, tmp_path):
    flickr = trained[3]
    photo = flickr.image_path(flickr.splits["test"][1][0])
    with chromium_page() as page:
        page.goto(server.url)
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("#songs tbody tr")
        titles = page.locator("#songs td.title").all_inner_texts()
        assert len(titles) == 10 and all(titles)
        assert page.inner_text("#caption") and page.locator("#tags li").count() > 0
        assert page.inner_text("#photo-name") == photo.name
        page.wait_for_function("[...document.querySelectorAll('td.mel img')].every(i => i.complete && i.naturalWidth)")
        page.click("#examples button[data-example=winter_snow]")
        page.wait_for_function("document.querySelector('#photo-name').textContent === 'winter_snow.jpg'")
        assert page.locator("#songs tbody tr").count() == 10


@pytest.mark.slow
@needs_chromium
def test_browser_shows_the_error_of_a_non_image(server, photo, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are notes, not a photo")
    with chromium_page() as page:
        page.goto(server.url)
        page.set_input_files("#file", str(notes))
        page.wait_for_selector("#error:not([hidden])")
        assert "not a JPEG, PNG or WebP image" in page.inner_text("#error")
        assert page.locator("#result").is_hidden()
        page.set_input_files("#file", files=[{"name": "good.jpg", "mimeType": "image/jpeg", "buffer": photo}])
        page.wait_for_selector("#songs tbody tr")
        assert page.locator("#error").is_hidden() and page.locator("#songs tbody tr").count() == 10


@pytest.mark.slow
def test_the_users_words_join_the_photos(client, photo):
    answer = client.post("/api/recommend", data={"text": "비 오는 밤 rainy"}, files={"photo": ("p.jpg", photo)})
    assert answer.status_code == 200
    trail = answer.json()["trail"]
    assert trail["sources"]["비"] == ["text"] and trail["sources"]["rainy"] == ["text"]
    assert answer.json()["photo_tags"]["classes"]  # the tagger ran beside the captioner
    long = client.post("/api/recommend", data={"text": "비" * 501}, files={"photo": ("p.jpg", photo)})
    assert long.status_code == 422 and "the limit is 500" in long.json()["error"]
