"""`${mri.fast_precision:...}` picks bf16 only where the hardware runs it natively."""
import pytest
import torch

from mri.utils import precision
from mri.utils.precision import fast_precision


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cpu_gets_bf16_only_when_native(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert fast_precision("cpu") == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fast_precision("auto") == expected


@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_gpu_gets_bf16_from_ampere_on(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert fast_precision("gpu") == expected
    assert fast_precision("auto") == expected


def test_captioner_config_resolves_it(make_cfg, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert make_cfg("train", "captions", "model=captioner").trainer.precision == "32-true"
    forced = make_cfg("train", "captions", "model=captioner", "trainer.precision=bf16-mixed")
    assert forced.trainer.precision == "bf16-mixed"
    assert make_cfg("train", "tag_mel", "model=squeezenet").trainer.precision == "32-true"  # measured in float32
