"""Tag-mel regressors: how similar is a query tag to a song, from the song's 48x20 mel features.

Early fusion is the slides' model, a SqueezeNet (Iandola et al. 2016) fed the mel with the tag as
extra input planes (learned per tag, and multiplied with the mel); late fusion is a two-tower model whose
song vectors are computed once per catalogue. Both share one interface:

    net(tag_ids, mels)  # (B,) long, (B, 1, 48, 20) -> (B,) scores, trained by MSE on [0, 1] targets
    net.score_matrix(tag_ids, mels)  # (T,), (N, 1, 48, 20) -> (T, N) scores of every tag x song

Mels arrive already standardised (the DataModule does it); the nets do no input scaling.
"""

import torch
import torch.nn.functional as F
from torch import nn

from mri.models.backbones import create_backbone

__all__ = ["EarlyFusionNet", "TwoTowerNet"]


def _resize(mels: torch.Tensor, input_size: tuple[int, int] | None) -> torch.Tensor:
    """Bilinear upsampling of (B, 1, 48, 20) to `input_size`, giving deep backbones more map."""
    if input_size is None:
        return mels
    return F.interpolate(mels, size=tuple(input_size), mode="bilinear", align_corners=False)


class EarlyFusionNet(nn.Module):
    """The tag as learned input planes beside the mel -> backbone -> MLP -> scalar.

    Each tag owns `tag_planes` maps the size of the mel features (from a `tag_dim` embedding). The
    network sees the mel, the tag's maps and their product, so a tag's sound template meets the mel
    at the first layer. Exact for every (tag, song) pair, but a query runs the network once per song.
    """

    kind = "early_fusion"  # what its checkpoints say they hold (mri.checkpoints.KINDS)

    def __init__(
        self,
        num_tags: int,
        backbone: str = "squeezenet1_1",
        tag_dim: int = 8,
        tag_planes: int = 4,
        plane_size: tuple[int, int] = (48, 20),
        pretrained: str | None = None,
        dropout: float = 0.1,
        hidden: int = 64,
        input_size: tuple[int, int] | None = None,
        trainable_backbone: bool = True,
        chunk_size: int = 4096,
    ):
        super().__init__()
        self.input_size = input_size
        self.plane_shape = (tag_planes, *plane_size)
        self.chunk_size = chunk_size  # pairs per forward in score_matrix
        self.tag_embedding = nn.Embedding(num_tags, tag_dim)
        self.tag_planes = nn.Linear(tag_dim, tag_planes * plane_size[0] * plane_size[1])
        self.backbone = create_backbone(
            backbone, in_chans=1 + 2 * tag_planes, pretrained=pretrained, trainable=trainable_backbone
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.backbone.num_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, tag_ids: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        if mels.shape[-2:] != self.plane_shape[1:]:
            raise ValueError(f"mel features of size {tuple(mels.shape[-2:])}, but this net's tag planes are "
                             f"{self.plane_shape[1:]}: set plane_size to the features' (bands, components)")
        planes = self.tag_planes(self.tag_embedding(tag_ids)).view(-1, *self.plane_shape)  # (B, P, 48, 20)
        x = torch.cat([mels, planes, mels * planes], dim=1)  # (B, 1 + 2P, 48, 20)
        return self.head(self.backbone(_resize(x, self.input_size))).squeeze(1)  # (B,)

    def score_matrix(self, tag_ids: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """All T*N pairs through the network, `chunk_size` pairs at a time -> (T, N)."""
        T, N = len(tag_ids), len(mels)
        pair_tags = tag_ids.repeat_interleave(N)  # (T*N,) tag-major
        pair_songs = torch.arange(N, device=mels.device).repeat(T)  # (T*N,)
        scores = [
            self(pair_tags[i : i + self.chunk_size], mels[pair_songs[i : i + self.chunk_size]])
            for i in range(0, T * N, self.chunk_size)
        ]
        return torch.cat(scores).view(T, N)


class TwoTowerNet(nn.Module):
    """Late fusion: score = scale * cos(song vector, tag vector) + bias.

    Song tower: mel -> backbone -> Linear -> dim; tag tower: an embedding. Song vectors can be
    computed once, so scoring a catalogue for T tags is one (T, dim) x (dim, N) product.
    """

    kind = "two_tower"  # what its checkpoints say they hold (mri.checkpoints.KINDS)

    def __init__(
        self,
        num_tags: int,
        backbone: str = "squeezenet1_1",
        dim: int = 64,
        pretrained: str | None = None,
        dropout: float = 0.1,
        input_size: tuple[int, int] | None = None,
        trainable_backbone: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.backbone = create_backbone(
            backbone, in_chans=1, pretrained=pretrained, trainable=trainable_backbone
        )
        self.song_proj = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.backbone.num_features, dim)
        )
        self.tag_embedding = nn.Embedding(num_tags, dim)
        # a wide initial scale: with 0.5 (cosine [-1, 1] onto [0, 1]) the towers barely learn
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.bias = nn.Parameter(torch.tensor(0.5))

    def encode_songs(self, mels: torch.Tensor) -> torch.Tensor:
        return self.project_songs(self.song_features(mels))  # (N, dim)

    def song_features(self, mels: torch.Tensor) -> torch.Tensor:
        """(N, 1, 48, k) -> (N, num_features): the song tower's backbone."""
        return self.backbone(_resize(mels, self.input_size))

    def project_songs(self, features: torch.Tensor) -> torch.Tensor:
        """(N, num_features) -> (N, dim) unit song vectors: the song tower's head."""
        return F.normalize(self.song_proj(features), dim=-1)

    def encode_tags(self, tag_ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.tag_embedding(tag_ids), dim=-1)  # (T, dim)

    def forward(self, tag_ids: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        cos = (self.encode_tags(tag_ids) * self.encode_songs(mels)).sum(-1)  # (B,)
        return self.scale * cos + self.bias

    def score_matrix(self, tag_ids: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        cos = self.encode_tags(tag_ids) @ self.encode_songs(mels).T  # (T, N)
        return self.scale * cos + self.bias
