"""How many multiply-accumulates (MACs) one traced call performs, keyed by torch function name.

Conventions (the numbers are exact for these rules, and independent of device and dtype):

- contractions count one MAC per multiply of the naive algorithm: ``linear``/``matmul``/``bmm``/
  ``einsum``/``baddbmm`` = output elements x contracted size; ``conv`` = output elements x
  ``in_channels/groups`` x kernel size; a transposed conv = *input* elements x
  ``out_channels/groups`` x kernel size (its exact multiply count);
- ``scaled_dot_product_attention`` = ``q @ k^T`` plus ``attn @ v`` (``2*B*H*L*S*E`` when v's dim
  equals q's); causal masks are not discounted; ``multi_head_attention_forward`` (what
  ``nn.MultiheadAttention`` calls) = the q/k/v and output projections plus the two matmuls;
- normalisations (batch/instance/group/layer/RMS norm) = 1 MAC per element to normalise, plus 1
  when they have an affine weight (so an affine BatchNorm is 2 MACs per element);
- biases, element-wise ops, activations, pooling, softmax, dropout and embeddings count 0.

Register a rule for another op with :func:`register_mac_rule`.
"""

from __future__ import annotations

import math
from typing import Callable

from structprune.trace.nodes import Node, Value

MacRule = Callable[[Node], int]
_RULES: dict[str, MacRule] = {}


def register_mac_rule(*op_names: str) -> Callable[[MacRule], MacRule]:
    """Register ``rule(node) -> int`` as the MAC count of the torch functions ``op_names``.

    Example::

        @structprune.utils.register_mac_rule("my_op")
        def my_op_macs(node):
            return node.outputs[0].shape[-1] * node.inputs[0].shape[-1]
    """

    def decorator(rule: MacRule) -> MacRule:
        for name in op_names:
            _RULES[name] = rule
        return rule

    return decorator


def macs_of(node: Node) -> int:
    """MACs of one traced call (0 for ops without a rule)."""
    rule = _RULES.get(node.op)
    return int(rule(node)) if rule is not None else 0


def numel(value: Value) -> int:
    return math.prod(value.shape)


def _tensor_arg(node: Node, position: int, name: str) -> Value | None:
    value = node.arg(position, name)
    return value if isinstance(value, Value) else None


@register_mac_rule("conv1d", "conv2d", "conv3d")
def conv_macs(node: Node) -> int:
    weight = _tensor_arg(node, 1, "weight")  # (out, in / groups, *kernel)
    return numel(node.outputs[0]) * math.prod(weight.shape[1:])


@register_mac_rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose_macs(node: Node) -> int:
    weight = _tensor_arg(node, 1, "weight")  # (in, out / groups, *kernel)
    return numel(node.inputs[0]) * math.prod(weight.shape[1:])


@register_mac_rule("linear")
def linear_macs(node: Node) -> int:
    weight = _tensor_arg(node, 1, "weight")
    return numel(node.outputs[0]) * weight.shape[-1]


@register_mac_rule("bilinear")
def bilinear_macs(node: Node) -> int:
    weight = _tensor_arg(node, 2, "weight")  # (out, in1, in2)
    return numel(node.outputs[0]) * weight.shape[1] * weight.shape[2]


@register_mac_rule("matmul", "__matmul__", "mm", "bmm", "mv", "dot", "vdot", "inner")
def matmul_macs(node: Node) -> int:
    return numel(node.outputs[0]) * node.inputs[0].shape[-1]


@register_mac_rule("__rmatmul__")
def rmatmul_macs(node: Node) -> int:
    # ``a.__rmatmul__(b)`` computes ``b @ a``: the contracted size is b's last dim
    return numel(node.outputs[0]) * node.inputs[-1].shape[-1]


@register_mac_rule("addmm", "baddbmm", "addmv")
def addmm_macs(node: Node) -> int:
    left = _tensor_arg(node, 1, "mat1") or _tensor_arg(node, 1, "batch1") or _tensor_arg(node, 1, "mat")
    return numel(node.outputs[0]) * left.shape[-1]


@register_mac_rule("addbmm")
def addbmm_macs(node: Node) -> int:
    batch1 = _tensor_arg(node, 1, "batch1")  # (b, n, k), summed over b
    return numel(node.outputs[0]) * batch1.shape[0] * batch1.shape[-1]


@register_mac_rule("scaled_dot_product_attention")
def sdpa_macs(node: Node) -> int:
    query, key = node.inputs[0], node.inputs[1]
    return key.shape[-2] * (numel(query) + numel(node.outputs[0]))


@register_mac_rule("multi_head_attention_forward")
def multi_head_attention_macs(node: Node) -> int:
    query, key, value = (node.arg(i, n) for i, n in enumerate(("query", "key", "value")))
    embed = query.shape[-1]
    rows_q = numel(query) // embed
    projections = rows_q * embed * embed * 2  # q in-projection and the output projection
    projections += numel(key) * embed + numel(value) * embed
    source = key.shape[0]
    static_k = node.arg(21, "static_k")
    if isinstance(static_k, Value):
        source = static_k.shape[1]
    else:
        source += int(isinstance(node.arg(7, "bias_k"), Value)) + int(bool(node.arg(9, "add_zero_attn")))
    return projections + 2 * rows_q * source * embed


@register_mac_rule("batch_norm", "instance_norm")
def batch_norm_macs(node: Node) -> int:
    return numel(node.inputs[0]) * (1 + isinstance(node.arg(3, "weight"), Value))


@register_mac_rule("layer_norm", "group_norm")
def layer_norm_macs(node: Node) -> int:
    return numel(node.inputs[0]) * (1 + isinstance(node.arg(2, "weight"), Value))


@register_mac_rule("rms_norm")
def rms_norm_macs(node: Node) -> int:
    return numel(node.inputs[0]) * (1 + isinstance(node.arg(2, "weight"), Value))


@register_mac_rule("einsum")
def einsum_macs(node: Node) -> int:
    """Operands contracted left to right, each pair counting the product of all its index sizes."""
    operands = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (list, tuple)) else node.args[1:]
    shapes = [op.shape for op in operands]
    specs, output = einsum_specs(node.args[0], shapes)
    sizes: dict[str, int] = {}
    for spec, shape in zip(specs, shapes):
        for letter, size in zip(spec, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    total, current = 0, specs[0]
    for k in range(1, len(specs)):
        letters = set(current) | set(specs[k])
        total += math.prod(sizes[c] for c in letters)
        later = set("".join(specs[k + 1:]) + output)
        current = "".join(c for c in letters if c in later)
    return total


def einsum_specs(equation: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """Input and output index strings of an einsum with ``...`` spelled out as placeholder letters."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    inputs = lhs.split(",")
    width = max((len(shape) - len(spec) + 3 for spec, shape in zip(inputs, shapes) if "..." in spec), default=0)
    broadcast = "".join(chr(0x100 + i) for i in range(width))

    def expand(spec: str, ndim: int) -> str:
        return spec.replace("...", broadcast[width - (ndim - len(spec) + 3):]) if "..." in spec else spec

    inputs = [expand(spec, len(shape)) for spec, shape in zip(inputs, shapes)]
    if arrow:
        return inputs, rhs.replace("...", broadcast)
    joined = "".join(inputs)
    return inputs, broadcast + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in broadcast))
