"""Every registered backbone honours the contract; registry, pretrained files and freezing."""

import urllib.error

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from mri.models import backbones
from mri.models.backbones import create_backbone, list_backbones, register_backbone


def _first_conv_name(module: nn.Module) -> str:
    return next(n for n, m in module.named_modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_contract(name):
    torch.manual_seed(0)
    for in_chans, x in [(1, torch.randn(2, 1, 48, 20)), (9, torch.randn(2, 9, 48, 20)),
                        (3, torch.randn(1, 3, 224, 224))]:  # fmt: skip
        backbone = create_backbone(name, in_chans=in_chans).eval()
        with torch.no_grad():
            fmap, vec = backbone.forward_features(x), backbone(x)
        assert fmap.ndim == 4 and fmap.shape[:2] == (len(x), backbone.num_features)
        assert vec.shape == (len(x), backbone.num_features)
        assert torch.isfinite(fmap).all() and torch.isfinite(vec).all()


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="squeezenet1_1") as err:
        create_backbone("no_such_net")
    assert all(name in str(err.value) for name in list_backbones())


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("resnet18")(lambda in_chans, pretrained: None)


@pytest.mark.parametrize("wrapped", [False, True])
def test_pretrained_from_local_file(tmp_path, wrapped):
    source = tvm.resnet18()
    state = source.state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": state} if wrapped else state, path)

    backbone = create_backbone("resnet18", in_chans=5, pretrained=str(path))
    loaded = backbone.trunk.state_dict()
    first = _first_conv_name(backbone.trunk)
    assert set(loaded) == {k for k in state if not k.startswith("fc.")}
    for key, value in loaded.items():
        if not key.startswith(first + "."):
            assert torch.equal(value, state[key]), key
    # first conv adapted: repeated over 5 channels, rescaled by 3/5
    conv = state[first + ".weight"]
    assert torch.allclose(loaded[first + ".weight"][:, 3:5], conv[:, :2] * 3 / 5)


def test_adapt_input_conv_single_channel_sums():
    weight = torch.randn(4, 3, 3, 3)
    assert torch.allclose(backbones.adapt_input_conv(weight, 1), weight.sum(1, keepdim=True))
    assert torch.equal(backbones.adapt_input_conv(weight, 3), weight)


def test_missing_pretrained_path_names_it(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_backbone("squeezenet1_1", pretrained=str(missing))


def test_offline_weights_name_suggests_local_file(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tvm._api, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="offline.*local file path"):
        create_backbone("squeezenet1_1", pretrained="DEFAULT")


def test_frozen_backbone_has_no_grad_params_and_stays_in_eval():
    backbone = create_backbone("plain_cnn", in_chans=1, trainable=False)
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not any(m.training for m in backbone.modules())
    running_mean = backbone.trunk.block0[1].running_mean.clone()
    backbone(torch.randn(4, 1, 48, 20))
    assert torch.equal(backbone.trunk.block0[1].running_mean, running_mean)
