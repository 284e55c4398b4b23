"""Where the model runs: ``auto | cpu | cuda[:N]`` resolved once, and a module's own device.

Entry points resolve the device setting once (``resolve_device``); library code then follows the
model: inputs go where the model's weights are (``module_device``), never to a default.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DeviceUnavailable", "module_device", "resolve_device"]


class DeviceUnavailable(ValueError):
    """A CUDA device was asked for where torch sees none (or not that many)."""


def resolve_device(name: str) -> torch.device:
    """``'auto'`` -> CUDA when present, else CPU; ``'cpu'``, ``'cuda'``, ``'cuda:N'`` as given.

    Raises ``DeviceUnavailable`` for a CUDA device torch cannot see, at once, rather than at the
    first tensor moved there.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceUnavailable(f"device {name!r} asked for, but torch sees no CUDA device")
        if device.index is not None and device.index >= count:
            raise DeviceUnavailable(f"device {name!r} asked for, but torch sees {count} GPU(s)")
    return device


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (CPU for a module holding none).

    >>> module_device(nn.Linear(2, 1).to("meta"))
    device(type='meta')
    """
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")
