"""`${mri.fast_precision:<accelerator>}`: the mixed precision an accelerator runs fast, for configs.

bf16 autocast roughly halves a captioner training step on CPUs with AVX512-BF16 or AMX (measured in
experiments/train_speed/captioner_step.py); elsewhere on a CPU it is emulated and slower than float32.
"""
from __future__ import annotations

from omegaconf import OmegaConf

RESOLVER = "mri.fast_precision"


def cpu_has_native_bf16() -> bool:
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, torch >= 2.3
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def fast_precision(accelerator: str) -> str:
    """bf16-mixed on GPUs with bf16 (Ampere and later) and CPUs with native bf16; 16-mixed on older
    GPUs; 32-true on other CPUs. `auto` means the GPU when there is one."""
    import torch

    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if accelerator == "cpu" and cpu_has_native_bf16() else "32-true"


def register_precision_resolver() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, fast_precision)
