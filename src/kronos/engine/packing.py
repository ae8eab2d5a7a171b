"""Packed weights: the linear layers of cached passes multiplied by weights packed once.

`packed_products(batch_invariant)` is the one place packing is switched on: inside it, in this
thread, `kronos.nn.layers.linear` multiplies each group of layers that take the same input
(q, k and v; w1 and w3; ...) by one product on their fused, packed weight (`PackedLinear`).
Module forwards take no argument for it. A packed copy is kept beside its layers for as long as
they live (`packed_linear`), and made again once a weight is replaced or changed in place.

`batch_invariant` names the kernel set. With it, a row's numbers never depend on the rows
beside it: one packed product for every row count. Without it, a one-row product runs on slabs
of the weight, the fastest kernel for that shape, rounded its own way.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from kronos.nn.layers import PACKED_PRODUCTS

SLABS = 4
MIN_ROWS = 4  # F.linear computes a row the same way from 4 rows up

WeightsState = tuple[tuple[torch.device, int, int], ...]


class PackedLinear:
    """Linear layers of one input fused into one product, their weight packed once.

    On CPU in float32 the product is oneDNN's on the packed weight, which spreads even one row
    over every thread (F.linear runs a one-row product on one thread), and gives a row the same
    numbers whatever the row count (checked at Kronos-small's widths). It costs about 50 us a
    call to set up, which one-row steps feel. Unless asked for `batch_invariant` numbers, a single
    row is instead multiplied by SLABS slabs of the weight in one batched product, a slab a
    thread, as fast as the memory streams them; its rounding is not that of many rows.

    Elsewhere (GPU, bfloat16) it is F.linear on the fused weight. F.linear changes kernels and
    rounding at 1, 2-3 and 4 or more rows, so for batch invariance fewer than 4 rows are padded
    with zero rows.
    """

    def __init__(self, *layers: nn.Linear):
        self.layers = [weakref.ref(layer) for layer in layers]
        self.state = _weights_state(layers)
        self.sizes = [layer.out_features for layer in layers]
        weight = _joined([layer.weight for layer in layers])
        self.bias = None if layers[0].bias is None else _joined([layer.bias for layer in layers])
        self.onednn = (
            weight.device.type == "cpu"
            and weight.dtype == torch.float32
            and bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call,unused-ignore]
        )
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, None) if self.onednn else weight
        self.slabs: tuple[torch.Tensor, torch.Tensor | None] | None = None  # made on first use
        self.sliceable = self.onednn and weight.shape[0] % SLABS == 0

    def packs(self, layers: Sequence[nn.Linear]) -> bool:
        """Whether this packs these very layers, with the weights they hold now."""
        same = all(ref() is layer for ref, layer in zip(self.layers, layers, strict=True))
        return same and self.state is not None and self.state == _weights_state(layers)

    def __call__(self, x: torch.Tensor, batch_invariant: bool = True) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        n = rows.shape[0]
        if n == 1 and self.sliceable and not batch_invariant:
            weight, bias = self.slabs or self._cut_slabs()
            column = rows.t().expand(SLABS, -1, -1)
            out = torch.bmm(weight, column) if bias is None else torch.baddbmm(bias, weight, column)
        elif self.onednn:
            out = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")
        elif n < MIN_ROWS and batch_invariant:
            padded = torch.cat([rows, rows.new_zeros(MIN_ROWS - n, rows.shape[1])])
            out = F.linear(padded, self.weight, self.bias)[:n]
        else:
            out = F.linear(rows, self.weight, self.bias)
        return out.view(*x.shape[:-1], -1)

    def _cut_slabs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused weight [out, in] as SLABS slabs [SLABS, out / SLABS, in], the bias alike."""
        layers = [ref() for ref in self.layers]
        weight = _joined([layer.weight for layer in layers if layer is not None])  # alive: in use
        bias = None if self.bias is None else self.bias.view(SLABS, -1, 1)
        self.slabs = weight.view(SLABS, -1, weight.shape[1]), bias
        return self.slabs


def _joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _weights_state(layers: Sequence[nn.Linear]) -> WeightsState | None:
    """Where the layers' weights and biases are and how often they were changed in place; None
    for tensors made under inference mode, which count no changes."""
    tensors = [t for layer in layers for t in (layer.weight, layer.bias) if t is not None]
    if any(t.is_inference() for t in tensors):
        return None
    return tuple((t.device, t.data_ptr(), t._version) for t in tensors)


_PACKED: weakref.WeakKeyDictionary[nn.Linear, dict[tuple[int, ...], PackedLinear]]
_PACKED = weakref.WeakKeyDictionary()


def packed_linear(layers: tuple[nn.Linear, ...]) -> PackedLinear:
    """A PackedLinear of `layers`, kept beside their first layer for as long as it lives and reused
    while they hold the same weights: packing Kronos-small's weights takes about 50 ms, as long as
    a short forecast. The price is a packed copy of the weights in memory (about 100 MB for
    Kronos-small; the slabs of fused layers, made by unseeded one-row steps, add about 60 MB)."""
    kept = _PACKED.setdefault(layers[0], {})
    key = tuple(map(id, layers))
    packed = kept.get(key)
    if packed is None or not packed.packs(layers):
        packed = kept[key] = PackedLinear(*layers)
    return packed


class PackedProducts:
    """`kronos.nn.layers.Products` on packed weights, in one kernel set: each group of layers is
    looked up (`packed_linear`) on its first product, which checks its weights once per call of
    generation."""

    def __init__(self, batch_invariant: bool) -> None:
        self.batch_invariant = batch_invariant
        self.packed: dict[tuple[nn.Linear, ...], PackedLinear] = {}

    def __call__(self, x: torch.Tensor, layers: tuple[nn.Linear, ...]) -> Sequence[torch.Tensor]:
        packed = self.packed.get(layers)
        if packed is None:
            packed = self.packed[layers] = packed_linear(layers)
        out = packed(x, self.batch_invariant)
        return (out,) if len(layers) == 1 else out.split_with_sizes(packed.sizes, dim=-1)


@contextmanager
def packed_products(batch_invariant: bool) -> Iterator[None]:
    """Within the block, in this thread, linear layers multiply by packed weights (`PackedLinear`)
    in the kernel set that `batch_invariant` names; the passes outside it are untouched.

    The setting is the thread's own (a context variable), so threads sharing a model may
    generate at once, each in its kernel set.
    """
    token = PACKED_PRODUCTS.set(PackedProducts(batch_invariant))
    try:
        yield
    finally:
        PACKED_PRODUCTS.reset(token)
