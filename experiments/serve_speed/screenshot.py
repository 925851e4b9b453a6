"""A screenshot of the page with results, for the README: an example photo clicked in headless Chromium.

    python experiments/serve_speed/screenshot.py [--example summer_sea] [--out experiments/serve_speed/page.png]

Korean titles and tags need a Korean font in the system (`apt-get install fonts-nanum`), else they show as boxes.
"""
from __future__ import annotations

import argparse

from bench import ROOT, serve_config  # this folder's benchmark: the same config as `python serve.py`

from mri.serve.background import BackgroundServer
from mri.serve.browser import chromium_page
from mri.serve.command import app_from_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="summer_sea", help="the example photo clicked (a theme name)")
    parser.add_argument("--out", default=str(ROOT / "experiments/serve_speed/page.png"))
    parser.add_argument("overrides", nargs="*", help="serve.yaml overrides (checkpoints, index_dir, k, ...)")
    args = parser.parse_args()
    with BackgroundServer(app_from_config(serve_config(args.overrides))) as server, chromium_page(1100, 900) as page:
        page.goto(server.url)
        page.click(f"#examples button[data-example={args.example}]")
        page.wait_for_selector("#songs tbody tr")
        page.wait_for_function("[...document.querySelectorAll('td.mel img')].every(i => i.complete && i.naturalWidth)")
        page.screenshot(path=args.out, full_page=True)
    print(args.out)


if __name__ == "__main__":
    main()
