"""The image stage of inference: photos -> what each image model finds in them, the models run on whole batches.

Reading and preprocessing (`prepare`) need no model and can run anywhere (the web page: in each request's
thread); `describe` runs every model once on a batch of prepared photos (the web page: one batch of the
photos that arrived together). Another image model joins the stage as one more entry of `models`.

    stage = ImageStage([CaptionModel(load_captioner(ckpt))])
    photo = stage.prepare("beach.jpg")   # or its bytes, or a PIL image; BadImage when it cannot be used
    stage.describe([photo])              # [{"caption": "a man is playing on the beach"}]
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from mri.data.images import DEFAULT_MAX_PIXELS, BadImage, ImagePreprocessing, ImageSource, load_image
from mri.models.captioner_module import CaptionerModule


class ImageModel(Protocol):
    """A model of the image stage: a batch of images prepared by its `preprocessing` -> one finding per image."""

    key: str  # the name of its findings ("caption")
    preprocessing: ImagePreprocessing

    def describe(self, images: torch.Tensor) -> list[Any]:  # (B, 3, H, W) -> B findings
        ...


class CaptionModel:
    """The captioner as an image model: finds a caption per image."""

    key = "caption"

    def __init__(self, captioner: CaptionerModule, beam_size: int | None = None):
        self.captioner, self.beam_size = captioner, beam_size
        self.preprocessing = captioner.preprocessing

    def describe(self, images: torch.Tensor) -> list[str]:
        return self.captioner.caption(images.to(self.captioner.device), self.beam_size)


@dataclass(frozen=True)
class PreparedPhoto:
    """A photo read and preprocessed for every model of a stage: (3, H, W) per distinct preprocessing."""

    inputs: dict[ImagePreprocessing, torch.Tensor]


class ImageStage:
    """The image models of a recommender (none, the captioner, ...) and the photos' reading, max_pixels at most."""

    def __init__(self, models: Sequence[ImageModel], max_pixels: int = DEFAULT_MAX_PIXELS):
        self.models, self.max_pixels = list(models), max_pixels

    def prepare(self, source: ImageSource) -> PreparedPhoto:
        """Read and preprocess a photo once per distinct preprocessing; BadImage when it cannot be used."""
        image = load_image(source, self.max_pixels)
        return PreparedPhoto({p: p(image) for p in dict.fromkeys(m.preprocessing for m in self.models)})

    def describe(self, photos: Sequence[PreparedPhoto]) -> list[dict[str, Any]]:
        """Each model once on the batch: per photo, model key -> its finding."""
        findings: list[dict[str, Any]] = [{} for _ in photos]
        for model in self.models:
            batch = torch.stack([photo.inputs[model.preprocessing] for photo in photos])  # (B, 3, H, W)
            for found, value in zip(findings, model.describe(batch), strict=True):
                found[model.key] = value
        return findings

    def run(self, sources: Sequence[ImageSource], batch_size: int = 16) -> Iterator[dict[str, Any] | BadImage]:
        """Findings per source in the order given (BadImage for one that cannot be used), batch_size at a time."""
        for start in range(0, len(sources), batch_size):
            prepared: list[PreparedPhoto | BadImage] = []
            for source in sources[start:start + batch_size]:
                try:
                    prepared.append(self.prepare(source))
                except BadImage as err:
                    prepared.append(err)
            good = [p for p in prepared if isinstance(p, PreparedPhoto)]
            found = iter(self.describe(good) if good else [])
            yield from (p if isinstance(p, BadImage) else next(found) for p in prepared)
