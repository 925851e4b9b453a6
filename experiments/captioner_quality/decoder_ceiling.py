"""How far can the captioner's decoder go when it is told what is in the photo? The LSTM decoder fed the
generator's true scene attributes instead of CNN features.

    python experiments/captioner_quality/decoder_ceiling.py [--root data/flickr8k-synth-n1500-s0]
        [--known people,colours,action,animals] [--epochs 30]

The `Captioner` of `model=captioner` (same sizes, optimiser, schedule, beam 3 with length penalty 1.0)
with its CNN encoder swapped for a two-layer MLP over `scene_attributes.attribute_vector`: the theme
and the number of people always, and what `--known` names. Prints test BLEU-4 every 5 epochs. Near the
human figure (one reference against the other four: 0.61-0.64) it says the decoder and its decoding
are not what holds BLEU-4 down; a captioner's encoder would have to see that much.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from scene_attributes import attribute_vector, load_scenes
from torch import nn

from mri.data.caption_datamodule import collate_captioned
from mri.data.vocab import PAD_ID, Vocabulary, tokenize
from mri.metrics.captioning import corpus_bleu
from mri.models.captioner import Captioner


class AttributeEncoder(nn.Module):
    """Attribute vectors (B, A) -> one "position" of features (B, 1, D) and the pooled vector (B, D)."""

    def __init__(self, num_attributes: int, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_attributes, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, attributes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.mlp(attributes)  # (B, D)
        return pooled[:, None], pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data/flickr8k-synth-n1500-s0")
    parser.add_argument("--known", default="people,colours,action,animals")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    torch.manual_seed(0)
    files, scenes = load_scenes(args.root)
    themes, known = sorted({s["theme"] for s in scenes.values()}), set(filter(None, args.known.split(",")))
    splits = {split: [(name, caps) for name, caps in pairs if name in scenes] for split, pairs in files.splits.items()}
    vocab = Vocabulary.build([c for _, caps in splits["train"] for c in caps], min_count=3)  # as data/captions.yaml
    attributes = {split: torch.tensor([attribute_vector(scenes[name], themes, known) for name, _ in pairs])
                  for split, pairs in splits.items()}  # (N, A)
    captions = [[torch.tensor(vocab.encode(c, 24)) for c in caps] for _, caps in splits["train"]]
    references = [[tokenize(c) for c in caps] for _, caps in splits["test"]]

    # configs/model/captioner.yaml
    net = Captioner(2000, encoder="plain_cnn", embed_dim=128, hidden_dim=256, dropout=0.2)
    net.encoder = AttributeEncoder(attributes["train"].shape[1], 256)
    net.restrict_output(len(vocab))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    print(f"{len(captions)} training photos, {len(references)} test photos, {attributes['train'].shape[1]} "
          f"attribute values (theme, number of people{', ' if known else ''}{', '.join(sorted(known))})")
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        for batch in torch.randperm(len(captions)).split(16):  # 16 photos, each with all its captions
            # the training batches of model=captioner, with attribute vectors (B, A) in place of images
            scenes_in, ids, _, image_of = collate_captioned([(attributes["train"][i], captions[i]) for i in batch])
            logits = net(scenes_in, ids, image_of)  # (C, L-1, V)
            loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), ignore_index=PAD_ID)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            net.eval()
            with torch.no_grad():
                decoded = net.beam_search(attributes["test"], beam_size=3, max_len=24, length_penalty=1.0)
            hypotheses = [vocab.decode(row).split() for row in decoded.tolist()]
            print(f"epoch {epoch:3d}  test BLEU-4 {corpus_bleu(hypotheses, references)['bleu4']:.3f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
