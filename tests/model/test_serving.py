"""The serving forward pass (model/serving.py): the plain call on CPU; buffers, graphs on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crmrisk.model import build
from crmrisk.model.fused import fuse
from crmrisk.model.serving import ServingRunner
from tests.model.conftest import EVENT_DIM, PROFILE_DIM, random_batch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _network(device="cpu", quantiles=(0.1, 0.5, 0.9)):
    model = build("qrcnn-lstm-cross", EVENT_DIM, PROFILE_DIM, quantiles, seed=2, members=2)
    return fuse(model.eval().to(device))


def _arrays(lengths, slots, seed=0):
    return tuple(x.numpy() for x in random_batch(lengths, slots, seed=seed))


def test_run__on_cpu_is_the_plain_call():
    network = _network()
    events, mask, profile = _arrays([4, 1, 3], 4)
    runner = ServingRunner(network, torch.device("cpu"), precision="fp32", cuda_graphs=True)
    probability, quantiles, attention = runner.run(events, mask, profile)
    with torch.inference_mode():
        want = network(*(torch.from_numpy(a) for a in (events, mask, profile)))
    assert np.array_equal(probability, want.probability.numpy())
    assert np.array_equal(quantiles, want.quantiles.numpy())
    assert np.array_equal(attention, want.attention.numpy())
    assert runner.graphs == 0  # graphs are for CUDA only


def test_runner__refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        ServingRunner(_network(), torch.device("cpu"), precision="fp16", cuda_graphs=False)


@cuda
@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("quantiles", [(0.1, 0.5, 0.9), ()])
def test_run__on_cuda_equals_the_cpu(graphs, quantiles):
    cpu = ServingRunner(_network("cpu", quantiles), torch.device("cpu"), precision="fp32",
                        cuda_graphs=False)  # fmt: skip
    gpu = ServingRunner(_network("cuda", quantiles), torch.device("cuda"), precision="fp32",
                        cuda_graphs=graphs)  # fmt: skip
    for lengths, slots, seed in (([4, 1, 3], 4, 0), ([1], 1, 1), ([4, 2, 4], 4, 2), ([1], 1, 3)):
        arrays = _arrays(lengths, slots, seed)  # shapes seen twice: the replay, new inputs
        for want, got in zip(cpu.run(*arrays), gpu.run(*arrays), strict=True):
            if want is None:
                assert got is None
            else:
                np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert gpu.graphs == (2 if graphs else 0)


@cuda
def test_run__bf16_on_cuda_is_close_to_fp32():
    arrays = _arrays([6, 1, 3, 6], 8)
    fp32 = ServingRunner(_network("cuda"), torch.device("cuda"), precision="fp32",
                         cuda_graphs=False).run(*arrays)  # fmt: skip
    bf16 = ServingRunner(_network("cuda"), torch.device("cuda"), precision="bf16",
                         cuda_graphs=True).run(*arrays)  # fmt: skip
    np.testing.assert_allclose(bf16[0], fp32[0], atol=2e-2)


@cuda
def test_run__on_cuda_rejects_a_mask_that_is_not_right_padded():
    events, mask, profile = _arrays([3, 2], 3)
    mask[1, 0] = False
    runner = ServingRunner(_network("cuda"), torch.device("cuda"), precision="fp32",
                           cuda_graphs=True)  # fmt: skip
    with pytest.raises(ValueError, match="right-padded"):
        runner.run(events, mask, profile)
