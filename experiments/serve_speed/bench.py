"""What the web page adds to a recommendation: upload -> results through the server vs the Recommender called directly.

    python experiments/serve_speed/bench.py [--photos 20] [--no-browser] [serve.yaml overrides, e.g. k=10]

One Recommender (the checkpoints and index `python serve.py` would use) answers the same generated test photos
three ways, interleaved photo by photo after one warm-up of each:

- direct:  Recommender.recommend([path], k), file read from disk;
- HTTP:    the photo's bytes POSTed as a form to the page's server (uvicorn, localhost) by httpx, JSON parsed;
- page:    the page in headless Chromium: the photo put in the page's file input, and the page's own clock
           from building the upload to the results drawn in the DOM ("Answered in N ms"); the mel pictures load
           after, and are waited for, untimed, before the next photo.

Prints the median of each and the medians' differences to direct; the target is page - direct <= 100 ms.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import httpx
from omegaconf import DictConfig

from mri.data.flickr import find_flickr
from mri.recommend.loading import checkpoints
from mri.recommend.pipeline import PhotoResult
from mri.serve.background import BackgroundServer
from mri.serve.browser import chromium_page, find_chromium
from mri.serve.command import app_from_config
from mri.utils.config import compose_config

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20, help="uploads timed (test photos, one upload each)")
    parser.add_argument("--flickr", default=str(ROOT / "data/flickr8k-synth-n1500-s0"), help="where the photos are")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium column")
    parser.add_argument("overrides", nargs="*", help="serve.yaml overrides (checkpoints, index_dir, k, ...)")
    args = parser.parse_args()

    cfg = serve_config(args.overrides)
    app = app_from_config(cfg)
    recommender = app.state.recommender
    flickr = find_flickr(args.flickr)
    photos = [flickr.image_path(name) for name, _ in flickr.splits["test"][:args.photos + 1]]  # first: warm-up
    browser = not args.no_browser and find_chromium() is not None
    ckpts = checkpoints(cfg, photos=True)
    print(f"captioner {ckpts['captioner']}\ntwo-tower {ckpts['tag_mel']}\n{len(photos) - 1} photos of {args.flickr}, "
          f"k={cfg.k}" + ("" if browser else "; no Chromium column"), flush=True)

    def direct(path: Path) -> float:
        start = time.perf_counter()
        (result,) = recommender.recommend([path], cfg.k)
        assert isinstance(result, PhotoResult), result
        return time.perf_counter() - start

    with BackgroundServer(app) as server, httpx.Client(base_url=server.url) as client:
        def http(path: Path) -> float:
            data = path.read_bytes()  # as the browser holds the file
            start = time.perf_counter()
            response = client.post("/api/recommend", files={"photo": (path.name, data, "image/jpeg")})
            songs = response.raise_for_status().json()["songs"]
            assert len(songs) == cfg.k
            return time.perf_counter() - start

        times = {"direct": [], "HTTP": [], "page": []}
        ways = {"direct": direct, "HTTP": http}
        with chromium_page() if browser else nullcontext() as page:
            if browser:
                page.goto(server.url)
                ways["page"] = lambda path: _page_upload(page, path)
            for i, path in enumerate(photos):
                for way, timed in ways.items():
                    seconds = timed(path)
                    if i:  # the first photo warms every path up
                        times[way].append(seconds)

    medians = {way: statistics.median(t) * 1000 for way, t in times.items() if t}
    print(f"\n{'median of ' + str(len(photos) - 1) + ' uploads':<28} {'ms':>8} {'- direct':>9}")
    for way, ms in medians.items():
        print(f"{way:<28} {ms:8.1f} {ms - medians['direct']:+9.1f}")
    worst = max(medians.values()) - medians["direct"]
    print(f"\nthe page adds {worst:.1f} ms (target <= 100 ms): {'met' if worst <= 100 else 'NOT met'}")
    sys.exit(0 if worst <= 100 else 1)


def serve_config(overrides: list[str]) -> DictConfig:
    """serve.yaml as `python serve.py <overrides>` composes it here: checkpoints of the latest runs under logs/."""
    with tempfile.TemporaryDirectory() as run:
        cfg = compose_config("serve", overrides, Path(run), ROOT / "data")
    cfg.paths.log_dir = str(ROOT / "logs")  # compose_config puts it in the run folder
    return cfg


def _page_upload(page, path: Path) -> float:
    """Upload through the page's file input; the page's own upload-to-results time in seconds."""
    page.evaluate("document.querySelector('#status').textContent = ''")
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Answered')")
    assert page.locator("#songs tbody tr").count() > 0
    # the mel pictures load after the results: let them finish before anything else is timed
    page.wait_for_function("[...document.querySelectorAll('td.mel img')].every(i => i.complete)")
    return int(re.search(r"Answered in (\d+) ms", page.inner_text("#status")).group(1)) / 1000


if __name__ == "__main__":
    main()
