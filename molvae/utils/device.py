"""The one device resolver (``"auto"``: CUDA when present, else CPU) and the bf16 capability check."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "native_bf16"]

_NATIVE_BF16: bool | None = None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; asking for CUDA where there is none is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return torch.device(device)


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run natively on ``device`` (CUDA, or a CPU with AVX-512-BF16 / AMX)."""
    global _NATIVE_BF16
    if device.type == "cuda":
        return True
    if _NATIVE_BF16 is None:
        try:
            _NATIVE_BF16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:
            _NATIVE_BF16 = False
    return _NATIVE_BF16
