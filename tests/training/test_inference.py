"""The one batched-inference helper: slices in order, autograd off."""

import torch

from tlbench.training.inference import map_batches


def test_map_batches_runs_each_slice_without_autograd():
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(10, 3)
    parts = map_batches(layer, x, 4)
    assert [len(p) for p in parts] == [4, 4, 2] and all(p.is_inference() for p in parts)
    kept = map_batches(layer, x, 4, inference=False)  # plain tensors without grad: usable in a later autograd pass
    assert not any(p.requires_grad or p.is_inference() for p in kept)
    assert torch.allclose(torch.cat(kept), layer(x).detach())
    assert map_batches(layer, x[:0], 4) == []
