"""CNN encoder + LSTM decoder image captioner, with optional soft attention.

Show and Tell (Vinyals et al. 2015, "Show and Tell: A Neural Image Caption Generator"): a CNN encodes
the image, an LSTM whose state starts from the image writes the caption word by word. Show, Attend
and Tell (Xu et al. 2015, "Show, Attend and Tell: Neural Image Caption Generation with Visual
Attention"): at every step the LSTM also reads a context vector, a soft (additive, deterministic)
attention over the CNN's feature map scaled by a gate from the hidden state (their section 4.2.1).
Without attention the context is the mean feature, i.e. uniform attention weights.

    net = Captioner(vocab_size=len(vocab), encoder="resnet18", attention=True)
    logits = net(images, captions)  # (B, L-1, V): teacher forcing, targets are captions[:, 1:]
    ids = net.beam_search(images, beam_size=3, max_len=20)  # (B, <=20), ends with EOS then PAD
    ids, log_prob = net.sample(images, copies=5)  # (5B, <=24), (5B,): drawn captions, for self-critical training
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from mri.data.vocab import BOS_ID, EOS_ID, PAD_ID
from mri.models.backbones import create_backbone, for_inference, weights_digest

__all__ = ["CaptionEncoder", "Captioner", "SoftAttention", "draw"]

State = tuple[torch.Tensor, torch.Tensor]  # LSTM (h, c), each (B, H)


class Memory(NamedTuple):
    """What the decoder reads from one image at every step."""

    features: torch.Tensor  # (B, N, D) projected feature map, N = h*w positions
    keys: torch.Tensor | None  # (B, N, A) the attention's projection of the features, computed once
    pooled: torch.Tensor  # (B, D) mean feature

    def repeat_interleave(self, k: int) -> Memory:
        return Memory(*(None if t is None else t.repeat_interleave(k, dim=0) for t in self))


class CaptionEncoder(nn.Module):
    """Any registered backbone -> (feature map (B, h*w, dim), pooled vector (B, dim)).

    A frozen backbone's features can be computed once and fed instead of the images (`cache_id` names
    them): forward takes images (B, 3, H, W) or the backbone's feature maps flattened to (B, h*w, C).
    """

    def __init__(self, backbone: str = "resnet18", dim: int = 512, pretrained: str | None = None,
                 trainable: bool = True):
        super().__init__()
        self.name = backbone
        self.backbone = create_backbone(backbone, in_chans=3, pretrained=pretrained, trainable=trainable)
        if not trainable:  # channels-last convolutions: 0.63x the CPU time of EfficientNet-Lite0 at 224 px here
            self.backbone.to(memory_format=torch.channels_last)
        self.project = nn.Sequential(nn.Linear(self.backbone.num_features, dim), nn.ReLU(inplace=True))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cached = images.dim() == 3  # the frozen backbone's features (B, N, C), computed once
        fmap = images if cached else self.feature_maps(images).flatten(2).transpose(1, 2)  # (B, N, C)
        features = self.project(fmap)  # (B, N, dim)
        return features, features.mean(1)  # (B, N, dim), (B, dim)

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's feature maps (B, C, h, w) of images (B, 3, H, W) (moved to the backbone's device):
        what a feature cache stores."""
        images = images.to(self.project[0].weight.device)
        if self.backbone.frozen:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone.forward_features(images)

    def fold_for_inference(self, example: torch.Tensor) -> CaptionEncoder:
        """The backbone's batch norms folded into its convolutions, in place (1.16-1.54x faster, the maps the same
        to ~1e-5): inference only from then on. example: one preprocessed image (1, 3, H, W)."""
        example = example.to(self.project[0].weight.device)
        for_inference(self.backbone, lambda: self.feature_maps(example))
        return self

    def folded_copy(self, example: torch.Tensor) -> CaptionEncoder:
        """A folded copy for computing a frozen backbone's features only (a feature cache); this encoder and its
        checkpointed weights stay as they are."""
        return copy.deepcopy(self).fold_for_inference(example)

    def cache_id(self) -> dict:
        """Plain data naming a frozen backbone's features: its name and a digest of its weights."""
        return {"name": self.name, "weights": weights_digest(self.backbone)}


class SoftAttention(nn.Module):
    """Additive attention (Bahdanau et al. 2015) over the feature map, gated by the hidden state (Xu et al. 2015)."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.key = nn.Linear(feature_dim, attention_dim)
        self.query = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)
        self.gate = nn.Linear(hidden_dim, feature_dim)

    def forward(self, memory: Memory, h: torch.Tensor) -> torch.Tensor:
        e = self.score(torch.tanh(memory.keys + self.query(h)[:, None])).squeeze(2)  # (B, N)
        alpha = e.softmax(dim=1)  # (B, N)
        context = (alpha[:, :, None] * memory.features).sum(1)  # (B, D)
        return torch.sigmoid(self.gate(h)) * context  # (B, D)


class CaptionDecoder(nn.Module):
    """LSTM over [word embedding, image context]; state initialised from the pooled image vector."""

    def __init__(self, vocab_size: int, feature_dim: int, embed_dim: int, hidden_dim: int,
                 attention: bool, attention_dim: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.attention = SoftAttention(feature_dim, hidden_dim, attention_dim) if attention else None
        self.init_h = nn.Linear(feature_dim, hidden_dim)
        self.init_c = nn.Linear(feature_dim, hidden_dim)
        self.lstm = nn.LSTM(embed_dim + feature_dim, hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, vocab_size)
        self.register_load_state_dict_pre_hook(_rename_lstm_cell_parameters)

    def start(self, features: torch.Tensor, pooled: torch.Tensor) -> tuple[Memory, State]:
        keys = self.attention.key(features) if self.attention is not None else None  # (B, N, A)
        state = torch.tanh(self.init_h(pooled)), torch.tanh(self.init_c(pooled))  # (B, H) each
        return Memory(features, keys, pooled), state

    def step(self, tokens: torch.Tensor, state: State, memory: Memory) -> tuple[torch.Tensor, State]:
        """One word: tokens (B,) -> logits (B, V) of the next word, and the new state."""
        h, c = state
        context = memory.pooled if self.attention is None else self.attention(memory, h)  # (B, D)
        # the LSTM's cell on one word: nn.LSTM called on a length-1 sequence costs ~3x more per step on CPU
        h, c = torch.lstm_cell(torch.cat([self.embed(tokens), context], dim=1), (h, c), *self.lstm.all_weights[0])
        return self.head(self.dropout(h)), (h, c)  # (B, V), (B, H) each

    def teacher_forced(self, words: torch.Tensor, state: State, memory: Memory) -> torch.Tensor:
        """Logits (C, T, V) of the word after each of words (C, T), reading the true previous words."""
        if self.attention is not None:  # the context depends on the previous state
            return self.stepped(words, state, memory)
        # every step reads the same context: one fused LSTM call over the whole caption
        context = memory.pooled[:, None].expand(-1, words.shape[1], -1)  # (C, T, D)
        h, c = state
        out, _ = self.lstm(torch.cat([self.embed(words), context], dim=2), (h[None], c[None]))  # (C, T, H)
        return self.head(self.dropout(out))  # (C, T, V)

    def stepped(self, words: torch.Tensor, state: State, memory: Memory) -> torch.Tensor:
        """`teacher_forced` one word at a time, as decoding runs: logits (C, T, V) for words (C, T)."""
        logits = []
        for t in range(words.shape[1]):
            step_logits, state = self.step(words[:, t], state, memory)  # (C, V)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)


def _rename_lstm_cell_parameters(module, state_dict, prefix, *_) -> None:
    """Checkpoints written before the fused LSTM hold nn.LSTMCell names (lstm.weight_ih, not lstm.weight_ih_l0)."""
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if f"{prefix}lstm.{name}" in state_dict:
            state_dict[f"{prefix}lstm.{name}_l0"] = state_dict.pop(f"{prefix}lstm.{name}")


def draw(log_probs: torch.Tensor) -> torch.Tensor:
    """One id per row of log_probs (R, V), drawn with those probabilities (by the inverse CDF: torch.multinomial
    takes 25x longer on a CPU here, 3.2 against 0.13 ms for 80 rows of 2,000 words)."""
    cdf = log_probs.exp().cumsum(dim=1)  # (R, V)
    u = torch.rand(len(cdf), 1, device=cdf.device) * cdf[:, -1:]  # (R, 1)
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)  # (R,)


class Captioner(nn.Module):
    """Encoder + decoder; teacher-forced `forward`, `greedy`, `sample` and batched `beam_search` decoding.

    Decoded ids hold the words, then EOS, then PAD for captions that ended early; BOS is not included.
    """

    kind = "captioner"  # what its checkpoints say they hold (mri.checkpoints.KINDS)

    def __init__(
        self,
        vocab_size: int,
        encoder: str = "resnet18",
        pretrained: str | None = None,
        trainable_encoder: bool = True,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        attention: bool = False,
        attention_dim: int = 256,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.encoder = CaptionEncoder(encoder, hidden_dim, pretrained, trainable_encoder)
        self.decoder = CaptionDecoder(vocab_size, hidden_dim, embed_dim, hidden_dim, attention, attention_dim, dropout)
        self.register_buffer("banned", torch.zeros(vocab_size, dtype=torch.bool), persistent=False)  # (V,)
        self.banned[[PAD_ID, BOS_ID]] = True  # never decoded

    def restrict_output(self, num_words: int) -> None:
        """Decode only ids below `num_words`: the vocabulary may be smaller than the output layer."""
        self.banned[num_words:] = True

    def start(self, images: torch.Tensor, image_of: torch.Tensor | None = None) -> tuple[Memory, State]:
        """Encode images (B, 3, H, W) (or cached features, see CaptionEncoder) once; with image_of (C,),
        one decoder row per caption of them."""
        features, pooled = self.encoder(images)  # (B, N, D), (B, D)
        if image_of is not None:
            features, pooled = features[image_of], pooled[image_of]  # (C, N, D), (C, D)
        return self.decoder.start(features, pooled)

    def next_log_probs(self, tokens: torch.Tensor, state: State, memory: Memory) -> tuple[torch.Tensor, State]:
        """Decoding step: log-probabilities (B, V) of the next word, never PAD, BOS or a banned id."""
        logits, state = self.decoder.step(tokens, state, memory)  # (B, V)
        logits = logits.masked_fill(self.banned, float("-inf"))
        return logits.log_softmax(dim=1), state

    def forward(self, images: torch.Tensor, captions: torch.Tensor,
                image_of: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, 3, H, W), captions (C, L) BOS..EOS PAD-padded -> logits (C, L-1, V) for captions[:, 1:].

        image_of (C,): the image row of each caption (default: caption i describes image i), so the
        encoder runs once for all captions of an image.
        """
        memory, state = self.start(images, image_of)
        return self.decoder.teacher_forced(captions[:, :-1], state, memory)  # (C, L-1, V)

    @torch.no_grad()
    def greedy(self, images: torch.Tensor, max_len: int = 24) -> torch.Tensor:
        """The most likely next word at every step -> (B, <=max_len) ids."""
        return self._unroll(images, lambda logp: logp.argmax(dim=1), max_len)[0]

    def sample(self, images: torch.Tensor, copies: int, max_len: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
        """copies captions per image, each word drawn from the decoder's distribution (self-critical training)
        -> ids (B*copies, <=max_len), rows i*copies.. for image i, and each caption's log-probability
        (B*copies,), differentiable."""
        return self._unroll(images, draw, max_len, copies)

    def _unroll(self, images: torch.Tensor, choose, max_len: int, copies: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode word by word, choose: log-probabilities (R, V) -> ids (R,) -> ids (R, T), log-probabilities (R,)."""
        memory, (h, c) = self.start(images)
        if copies > 1:  # rows i*copies.. decode image i
            memory, h, c = memory.repeat_interleave(copies), *(t.repeat_interleave(copies, 0) for t in (h, c))
        tokens = torch.full((len(h),), BOS_ID, dtype=torch.long, device=h.device)  # (R,)
        done = torch.zeros_like(tokens, dtype=torch.bool)
        log_prob = torch.zeros(len(h), device=h.device)  # (R,)
        out = []
        for _ in range(max_len):
            logp, (h, c) = self.next_log_probs(tokens, (h, c), memory)  # (R, V)
            tokens = choose(logp.detach()).masked_fill(done, PAD_ID)  # (R,)
            log_prob = log_prob + logp.gather(1, tokens[:, None]).squeeze(1).masked_fill(done, 0.0)
            out.append(tokens)
            done = done | (tokens == EOS_ID)  # not in place: the masked_fill above keeps the old mask for backward
            if done.all():
                break
        return torch.stack(out, dim=1), log_prob  # (R, T), (R,)

    @torch.no_grad()
    def beam_search(self, images: torch.Tensor, beam_size: int = 3, max_len: int = 24,
                    length_penalty: float = 0.0) -> torch.Tensor:
        """Beam search over all images and beams at once -> (B, <=max_len) ids of each image's best beam.

        Ended beams stay in the beam, extended by PAD at no cost, until every beam has ended or max_len
        words are written; then the best beam by log-probability / length**length_penalty is returned,
        ended or not. beam_size=1 is greedy decoding.
        """
        B, K, V = len(images), beam_size, self.decoder.head.out_features
        memory, (h, c) = self.start(images)
        memory, h, c = memory.repeat_interleave(K), h.repeat_interleave(K, 0), c.repeat_interleave(K, 0)
        tokens = torch.full((B * K,), BOS_ID, dtype=torch.long, device=images.device)  # (B*K,)
        scores = torch.full((B, K), float("-inf"), device=images.device)  # (B, K) summed log-probs
        scores[:, 0] = 0.0  # the K beams start identical: keep one so the first step draws K different words
        ended = torch.zeros(B, K, dtype=torch.bool, device=images.device)
        seqs = torch.empty(B, K, 0, dtype=torch.long, device=images.device)  # (B, K, t)
        base = torch.arange(B, device=images.device)[:, None] * K  # (B, 1) first beam of each image
        pad_only = torch.full((V,), float("-inf"), device=images.device)
        pad_only[PAD_ID] = 0.0  # what an ended beam can add: PAD, at no cost
        for _ in range(max_len):
            logp, (h, c) = self.next_log_probs(tokens, (h, c), memory)  # (B*K, V)
            logp = torch.where(ended[:, :, None], pad_only, logp.view(B, K, V))  # (B, K, V)
            scores, flat = (scores[:, :, None] + logp).view(B, K * V).topk(K, dim=1)  # (B, K)
            origin, words = flat // V, flat % V  # (B, K) beam each candidate extends, its new word
            seqs = torch.cat([seqs.gather(1, origin[:, :, None].expand(-1, -1, seqs.shape[2])), words[:, :, None]], 2)
            ended = ended.gather(1, origin) | (words == EOS_ID)
            rows = (base + origin).view(-1)  # (B*K,) state rows the new beams continue from
            h, c, tokens = h[rows], c[rows], words.view(-1)
            if ended.all():
                break
        lengths = (seqs != PAD_ID).sum(2).clamp(min=1)  # (B, K) words + EOS
        best = (scores / lengths.float() ** length_penalty).argmax(dim=1)  # (B,)
        out = seqs[torch.arange(B, device=images.device), best]  # (B, T)
        return out[:, :int((out != PAD_ID).sum(1).max())]  # without the columns only other beams needed
