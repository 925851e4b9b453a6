"""The image stage of inference: photos -> what each image model finds in them, the models run on whole batches.

Reading and preprocessing (`prepare`) need no model and can run anywhere (the web page: in each request's
thread); `describe` runs every model once on a batch of prepared photos (the web page: one batch of the
photos that arrived together). Another image model joins the stage as one more entry of `models`. Models
on the same frozen trunk (the photo tagger's EfficientNet-Lite0 and the default captioner's encoder: the same
ImageNet weights, the same preprocessing) share one run of it per batch.

    stage = ImageStage([CaptionModel(load_captioner(ckpt))])
    photo = stage.prepare("beach.jpg")   # or its bytes, or a PIL image; BadImage when it cannot be used
    stage.describe([photo])              # [{"caption": "a man is playing on the beach"}]
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image
from torch import nn

from mri.data.images import DEFAULT_MAX_PIXELS, BadImage, ImagePreprocessing, ImageSource, load_image
from mri.models.backbones import for_inference, weights_digest
from mri.models.captioner_module import CaptionerModule
from mri.models.familiarity import Familiarity, pooled


class ImageModel(Protocol):
    """A model of the image stage: a batch of images prepared by its `preprocessing` -> one finding per image."""

    key: str  # the name of its findings ("caption")
    preprocessing: ImagePreprocessing
    trunk: Trunk | None  # a frozen trunk whose feature maps `describe` can take instead of running it

    def describe(self, images: torch.Tensor, fmap: torch.Tensor | None = None) -> list[Any]:
        """(B, 3, H, W) images (and their trunk's (B, C, h, w) feature maps, when computed) -> B findings."""
        ...


@dataclass(frozen=True)
class Trunk:
    """A frozen image trunk: images (B, 3, H, W) -> feature maps (B, C, h, w), and a digest of its weights (two
    trunks with the same digest compute the same maps)."""

    feature_maps: Callable[[torch.Tensor], torch.Tensor]
    digest: str

    @classmethod
    def of(cls, module: nn.Module, feature_maps: Callable[[torch.Tensor], torch.Tensor]) -> Trunk:
        """feature_maps computed by module, named by a digest of its weights' values (not their names)."""
        return cls(feature_maps, weights_digest(module, names=False))


class CaptionModel:
    """The captioner as an image model: finds a caption per image."""

    key = "caption"

    def __init__(self, captioner: CaptionerModule, beam_size: int | None = None):
        self.captioner, self.beam_size = for_inference(captioner), beam_size
        self.preprocessing = captioner.preprocessing
        encoder = captioner.net.encoder.fold_for_inference(self.preprocessing.example())
        self.trunk = Trunk.of(encoder.backbone, encoder.feature_maps) if encoder.backbone.frozen else None

    def describe(self, images: torch.Tensor, fmap: torch.Tensor | None = None) -> list[str]:
        x = images if fmap is None else fmap.flatten(2).transpose(1, 2)  # (B, h*w, C), as a feature cache holds
        return self.captioner.caption(x.to(self.captioner.device), self.beam_size)


class FamiliarityModel:
    """Finds per image its similarity to the nearest of a captioner's training photos (mri.models.familiarity),
    on the captioner's frozen trunk (run once for both; caption_model.trunk must not be None)."""

    key = "familiarity"

    def __init__(self, caption_model: CaptionModel, familiarity: Familiarity):
        self.preprocessing, self.trunk, self.familiarity = caption_model.preprocessing, caption_model.trunk, familiarity

    def describe(self, images: torch.Tensor, fmap: torch.Tensor | None = None) -> list[float]:
        fmap = self.trunk.feature_maps(images) if fmap is None else fmap  # (B, C, h, w)
        return self.familiarity.similarity(pooled(fmap)).tolist()


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
        sides = [p.resize for p in self.preprocessings()]
        return self.preprocess(load_image(source, self.max_pixels, max(sides, default=None)))

    def preprocessings(self) -> list[ImagePreprocessing]:
        """The distinct preprocessings of the models, in model order."""
        return list(dict.fromkeys(m.preprocessing for m in self.models))

    def preprocess(self, image: Image.Image) -> PreparedPhoto:
        """An RGB image (as load_image gives it) preprocessed once per distinct preprocessing."""
        return PreparedPhoto({p: p(image) for p in self.preprocessings()})

    def describe(self, photos: Sequence[PreparedPhoto]) -> list[dict[str, Any]]:
        """Each model once on the batch: per photo, model key -> its finding."""
        findings: list[dict[str, Any]] = [{} for _ in photos]
        fmaps: dict[tuple[ImagePreprocessing, str], torch.Tensor] = {}  # one run of each trunk
        for model in self.models:
            batch = torch.stack([photo.inputs[model.preprocessing] for photo in photos])  # (B, 3, H, W)
            batch = batch.contiguous(memory_format=torch.channels_last)
            if model.trunk is None:
                values = model.describe(batch)
            else:
                shared = (model.preprocessing, model.trunk.digest)
                if shared not in fmaps:
                    with torch.inference_mode():
                        fmaps[shared] = model.trunk.feature_maps(batch)  # (B, C, h, w)
                values = model.describe(batch, fmaps[shared])
            for found, value in zip(findings, values, strict=True):
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
