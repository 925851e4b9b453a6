"""Can an encoder see what the captions name? Train a backbone to predict scene attributes directly.

    python experiments/captioner_quality/probe.py plain_cnn [--root data/flickr8k-synth-n1500-s0] [--epochs 60]

A backbone from the registry, with one linear head per attribute (theme, number of people, number of
animals, action), is trained with cross-entropy on the training photos of a generated Flickr8k-format
root (the attributes come from `mri_synthetic.json`) and prints test accuracy per attribute after every
epoch, beside always answering the most frequent training value. The photos go through the
captioner's own image transform (and random flips), so a probe that fails here tells the captioner's
encoder cannot be expected to name these attributes either. Uses the GPU when there is one.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from scene_attributes import load_scenes
from torch import nn

from mri.data.flickr import FlickrFiles
from mri.data.images import captioner_preprocessing, load_image
from mri.data.synthetic.scenes import ACTIONS
from mri.models.backbones import create_backbone

ATTRIBUTES = ("theme", "n_people", "n_animals", "action")


def attribute_labels(scene: dict, themes: list[str]) -> list[int]:
    action = scene["action"] if scene["people"] else None
    return [themes.index(scene["theme"]), scene["n_people"], scene["n_animals"], [*ACTIONS, None].index(action)]


def load_split(files: FlickrFiles, scenes: dict[str, dict], split: str, image_size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) images and (N, 4) attribute labels of a split's generated photos."""
    themes = sorted({scene["theme"] for scene in scenes.values()})
    names = [name for name, _ in files.splits[split] if name in scenes]
    transform = captioner_preprocessing(image_size)
    images = torch.stack([transform(load_image(files.image_path(name))) for name in names])
    labels = torch.tensor([attribute_labels(scenes[name], themes) for name in names])
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone")
    parser.add_argument("--root", default="data/flickr8k-synth-n1500-s0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    files, scenes = load_scenes(args.root)
    (train_x, train_y), (test_x, test_y) = (load_split(files, scenes, s, args.image_size) for s in ("train", "test"))
    train_x, train_y, test_x, test_y = (t.to(device) for t in (train_x, train_y, test_x, test_y))
    majority = [(test_y[:, j] == train_y[:, j].mode().values).float().mean().item() for j in range(len(ATTRIBUTES))]
    print(f"{len(train_x)} training / {len(test_x)} test photos; most frequent value: "
          + " ".join(f"{a} {m:.2f}" for a, m in zip(ATTRIBUTES, majority, strict=True)))

    backbone = create_backbone(args.backbone, in_chans=3).to(device)
    n_values = torch.cat([train_y, test_y]).max(0).values + 1  # (4,) values each attribute takes
    heads = nn.ModuleList(nn.Linear(backbone.num_features, int(n)) for n in n_values).to(device)
    optimizer = torch.optim.AdamW([*backbone.parameters(), *heads.parameters()], lr=args.lr, weight_decay=1e-4)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        backbone.train()
        for batch in torch.randperm(len(train_x), device=device).split(args.batch_size):
            x = train_x[batch]
            flip = torch.rand(len(x), device=device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)  # (B, 3, S, S)
            features = backbone(x)  # (B, C)
            loss = sum(F.cross_entropy(head(features), train_y[batch, j]) for j, head in enumerate(heads))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        backbone.eval()
        with torch.no_grad():
            features = torch.cat([backbone(x) for x in test_x.split(128)])
            accuracy = [(head(features).argmax(1) == test_y[:, j]).float().mean().item()
                        for j, head in enumerate(heads)]
        print(f"epoch {epoch:3d}  test accuracy "
              + " ".join(f"{a} {v:.2f}" for a, v in zip(ATTRIBUTES, accuracy, strict=True))
              + f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
