"""Share of test captions that name their photo's scene (generated data: each photo's theme is known).

    python experiments/captioner_quality/scene_words.py <captioner best.ckpt> [--root <generated Flickr8k root>]

A caption counts when it holds one of the scene words of the photo's theme (mri.data.synthetic.themes).
"""
from __future__ import annotations

import argparse

from mri.data.caption_datamodule import CaptionDataModule
from mri.data.synthetic.themes import get_theme
from mri.models.captioner_module import load_captioner
from mri.utils.checkpoints import read_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt")
    parser.add_argument("--root", default=None, help="generated Flickr8k-format root (default: the checkpoint's)")
    args = parser.parse_args()
    args.root = args.root or read_checkpoint(args.ckpt)["datamodule_hyper_parameters"]["root"]
    model = load_captioner(args.ckpt)
    data = CaptionDataModule(root=args.root, generate=None, image_size=model.image_size)
    data.setup("test")
    if data.themes is None:
        raise SystemExit(f"{args.root} has no generated themes (mri_synthetic.json): use generated data")
    hits = total = 0
    for images, _, index in data.test_dataloader():
        for caption, i in zip(model.caption(images), index.tolist()):
            scene = set(get_theme(data.themes[data.image_names["test"][i]]).scene_words)
            hits += bool(scene & set(caption.split()))
            total += 1
    print(f"{args.root}: scene word in {hits} of {total} test captions: {hits / total:.3f}")


if __name__ == "__main__":
    main()
