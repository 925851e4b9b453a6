"""Batch norms folded into their convolutions for inference (mri.models.folding)."""
import pytest
import torch
from torch import nn

from mri.data.images import ImagePreprocessing
from mri.models.captioner import CaptionEncoder
from mri.models.folding import fold_batch_norms
from mri.models.imagenet import load_classifier


def with_statistics(module: nn.Module) -> nn.Module:
    """module in eval mode, its norms holding running statistics and affine weights far from the identity."""
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.5, 0.5)
    return module.eval()


def test_conv_norm_pairs_fold_to_the_same_outputs():
    net = with_statistics(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                        nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8)))
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        expected = net(x)
    assert fold_batch_norms(net, lambda: net(x[:1])) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    with torch.inference_mode():
        torch.testing.assert_close(net(x), expected, atol=1e-5, rtol=1e-5)


class PreNormResidual(nn.Module):
    """A convolution whose output goes to its norm and around it: folding would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.norm(y) + y


def test_a_conv_output_used_beyond_its_norm_is_refused():
    net = with_statistics(PreNormResidual())
    with pytest.raises(RuntimeError, match="used by more than its norm"):
        fold_batch_norms(net, lambda: net(torch.randn(1, 4, 5, 5)))
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(net.train(), lambda: net(torch.randn(1, 4, 5, 5)))


def test_efficientnet_lite0_folds_every_norm_and_keeps_its_answers():
    classifier = load_classifier("efficientnet_lite0").eval()
    x = torch.randn(4, 3, 224, 224)
    with torch.inference_mode():
        expected = classifier(x)
    assert fold_batch_norms(classifier, lambda: classifier(classifier.preprocessing.example())) == 49
    assert not any(isinstance(m, nn.BatchNorm2d) for m in classifier.modules())
    with torch.inference_mode():
        logits = classifier(x)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(logits.argmax(1), expected.argmax(1))


def test_a_captioners_feature_cache_encoder_is_a_folded_copy():
    encoder = CaptionEncoder("efficientnet_lite0", dim=32, pretrained="DEFAULT", trainable=False)
    before = {name: t.clone() for name, t in encoder.state_dict().items()}
    example = ImagePreprocessing().example()  # the defaults: EfficientNet-Lite0's
    folded = encoder.folded_copy(example)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.backbone.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in encoder.backbone.modules())  # the checkpointed one: as it was
    assert all(torch.equal(t, before[name]) for name, t in encoder.state_dict().items())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(folded.feature_maps(x), encoder.feature_maps(x), atol=1e-4, rtol=1e-4)
