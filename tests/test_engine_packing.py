"""kronos.engine.packing: packed weights equal the linears they pack, are reused until a weight
changes, and apply only inside their block and thread."""

from __future__ import annotations

import pytest
import torch

from kronos.engine.packing import PackedLinear, packed_linear, packed_products
from kronos.nn.layers import linear

torch.set_num_threads(1)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_invariant", [True, False])
def test_packed_linear_equals_the_linears_it_packs(bias, batch_invariant):
    torch.manual_seed(0)
    linears = [torch.nn.Linear(24, 40, bias=bias), torch.nn.Linear(24, 8, bias=bias)]
    packed = PackedLinear(*linears)
    for rows in (1, 3, 20):
        x = torch.randn(rows, 24)
        expected = torch.cat([lin(x) for lin in linears], dim=-1)
        torch.testing.assert_close(packed(x, batch_invariant), expected, rtol=1e-5, atol=1e-6)


def test_packed_weights_are_reused_until_the_weights_change():
    """Packing is kept beside the layers across caches, and redone when a weight is changed in
    place (an optimiser step, load_state_dict) or replaced: products never use stale weights."""
    torch.manual_seed(0)
    q, k = torch.nn.Linear(16, 16), torch.nn.Linear(16, 8)
    x = torch.randn(2, 16)
    first = packed_linear((q, k))
    assert packed_linear((q, k)) is first
    with torch.no_grad():
        k.weight.mul_(2)
    changed = packed_linear((q, k))
    assert changed is not first
    for batch_invariant in (True, False):
        got = changed(x[:1], batch_invariant)
        torch.testing.assert_close(got, torch.cat([q(x[:1]), k(x[:1])], dim=-1), rtol=1e-5, atol=1e-6)
    q.load_state_dict({"weight": torch.zeros(16, 16), "bias": torch.ones(16)})
    torch.testing.assert_close(packed_linear((q, k))(x)[:, :16], torch.ones(2, 16))
    with torch.inference_mode():  # weights made here count no changes: never reused
        r = torch.nn.Linear(16, 4)
        assert packed_linear((r,)) is not packed_linear((r,))


def test_packed_products_apply_inside_their_block_and_thread_only():
    """`linear` multiplies by packed weights inside `packed_products`, in the kernel set it
    names, and by the layers themselves outside it and in other threads."""
    import threading

    torch.manual_seed(0)
    q, k = torch.nn.Linear(16, 16), torch.nn.Linear(16, 8)
    x = torch.randn(1, 16)
    alone = [q(x), k(x)]
    elsewhere: list[torch.Tensor] = []
    with packed_products(batch_invariant=False):
        inside = linear(x, q, k)
        thread = threading.Thread(target=lambda: elsewhere.extend(linear(x, q, k)))
        thread.start()
        thread.join()
    assert torch.equal(torch.cat(list(inside), dim=-1), packed_linear((q, k))(x, batch_invariant=False))
    for got in (elsewhere, linear(x, q, k)):
        assert all(torch.equal(a, b) for a, b in zip(got, alone, strict=True))
