"""Device resolution and a module's own device (model/devices.py)."""

from __future__ import annotations

import pytest
import torch

from crmrisk.model import VARIANTS, build
from crmrisk.model.devices import DeviceUnavailable, module_device, resolve_device
from tests.model.conftest import EVENT_DIM, PROFILE_DIM


def test_resolve_device__auto_is_cuda_only_where_present():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device__cuda_without_one_is_a_clear_error(name):
    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resolve_device__a_gpu_index_past_the_last_is_refused():
    with pytest.raises(DeviceUnavailable, match="GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants__every_tensor_moves_with_to(variant):
    # What training and serving rely on: ``model.to(device)`` moves everything the forward
    # reads; a tensor kept as a plain attribute would stay behind.
    model = build(variant, EVENT_DIM, PROFILE_DIM, (0.1, 0.9), seed=0).to("meta")
    assert module_device(model) == torch.device("meta")
    assert [
        f"{name}.{attr}"
        for name, module in model.named_modules()
        for attr, value in vars(module).items()
        if isinstance(value, torch.Tensor) and value.device.type != "meta"
    ] == []
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}


def test_module_device__without_tensors_is_the_cpu():
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")
