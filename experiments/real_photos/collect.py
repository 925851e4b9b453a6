"""Rebuild photos/ (JPEG, longer side 512 px) from the packages named in labels.tsv.

    pip download --no-deps scikit-image==0.26.0 -d pkgs && unzip -q pkgs/scikit_image-*.whl 'skimage/data/*' -d pkgs
    apt-get download mate-backgrounds plasma-workspace-wallpapers && for f in *.deb; do dpkg-deb -x $f pkgs; done
    python experiments/real_photos/collect.py pkgs
"""
from __future__ import annotations

import sys
from pathlib import Path

import sklearn
from PIL import Image

HERE = Path(__file__).parent
SOURCES = {  # photo -> its file inside the unpacked packages (or scikit-learn's installed wheel)
    "coffee.jpg": "skimage/data/coffee.png", "chelsea.jpg": "skimage/data/chelsea.png",
    "motorcycle.jpg": "skimage/data/motorcycle_right.png", "rocket.jpg": "skimage/data/rocket.jpg",
    "hubble.jpg": "skimage/data/hubble_deep_field.jpg",
    "china.jpg": "sklearn:china.jpg", "dahlia.jpg": "sklearn:flower.jpg",
    **{f"{n}.jpg": f"usr/share/backgrounds/mate/nature/{m}.jpg" for n, m in [
        ("aqua", "Aqua"), ("blinds", "Blinds"), ("dune", "Dune"), ("fresh_flower", "FreshFlower"),
        ("garden", "Garden"), ("meadow", "GreenMeadow"), ("ladybird", "LadyBird"), ("raindrops", "RainDrops"),
        ("storm", "Storm"), ("two_wings", "TwoWings"), ("yellow_flower", "YellowFlower")]},
    **{f"{n}.jpg": f"usr/share/wallpapers/{m}/contents/images" for n, m in [
        ("by_the_water", "BytheWater"), ("cold_ripple", "ColdRipple"), ("darkest_hour", "DarkestHour"),
        ("evening_glow", "EveningGlow"), ("fallen_leaf", "FallenLeaf"), ("one_stands_out", "OneStandsOut"),
        ("path", "Path"), ("kite", "Kite"), ("summer_1am", "summer_1am")]},
}


def source_file(pkgs: Path, where: str) -> Path:
    if where.startswith("sklearn:"):
        return Path(sklearn.__file__).parent / "datasets" / "images" / where.split(":", 1)[1]
    path = pkgs / where
    if path.is_dir():  # a Plasma wallpaper: the largest of its sizes
        return max(path.iterdir(), key=lambda p: p.stat().st_size)
    return path


def main(pkgs: Path) -> None:
    out = HERE / "photos"
    out.mkdir(exist_ok=True)
    for name, where in SOURCES.items():
        image = Image.open(source_file(pkgs, where)).convert("RGB")
        image.thumbnail((512, 512), Image.Resampling.LANCZOS)
        image.save(out / name, quality=90)
        print(f"{name}: {image.size[0]}x{image.size[1]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
