"""Caption words: a tokenizer and the captioner's Vocabulary (built from training captions only).

The vocabulary travels inside captioner checkpoints as a plain list (`to_list` / `from_list`), so
captioning a photo needs nothing else than the checkpoint.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # letters/digits, inner apostrophes and hyphens kept


def tokenize(caption: str) -> list[str]:
    """Lowercase words of a caption, punctuation dropped: "A dog's ball ." -> ["a", "dog's", "ball"]."""
    return _WORD.findall(caption.lower())


def word_ids(ids: Iterable[int]) -> list[int]:
    """The word ids of a caption's ids: up to the first EOS, PAD and BOS skipped (ints or a 1-D tensor)."""
    words = []
    for i in map(int, ids):
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            words.append(i)
    return words


class Vocabulary:
    """Word <-> id: the specials PAD, BOS, EOS, UNK at 0..3, then words, most frequent first."""

    def __init__(self, itos: Sequence[str]):
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {list(SPECIALS)}, got {list(itos[:len(SPECIALS)])}")
        if len(set(itos)) != len(itos):
            raise ValueError("a vocabulary lists each word once")
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 5, max_size: int | None = None) -> Vocabulary:
        """Words seen at least `min_count` times, most frequent first (ties by word); at most
        `max_size` entries in all, specials included. Give it the training split's captions only."""
        if max_size is not None and max_size < len(SPECIALS):
            raise ValueError(f"max_size {max_size} leaves no room for the {len(SPECIALS)} special tokens")
        counts = Counter(w for c in captions for w in tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, caption: str, max_len: int) -> list[int]:
        """BOS + word ids (UNK for unknown words) + EOS, at most `max_len` ids in all (words truncated)."""
        if max_len < 2:
            raise ValueError(f"max_len {max_len} leaves no room for BOS and EOS")
        ids = [self.stoi.get(w, UNK_ID) for w in tokenize(caption)][: max_len - 2]
        return [BOS_ID, *ids, EOS_ID]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of `ids` up to the first EOS, PAD and BOS skipped (ints or a 1-D tensor)."""
        return " ".join(self.itos[i] for i in word_ids(ids))

    def to_list(self) -> list[str]:
        """The words in id order, for a checkpoint."""
        return list(self.itos)

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> Vocabulary:
        return cls(tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries: {' '.join(self.itos[4:12])} ...)"
