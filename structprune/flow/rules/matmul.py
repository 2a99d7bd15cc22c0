"""Contractions: matmul / bmm / einsum / scaled_dot_product_attention / linear / embedding."""

from __future__ import annotations


from structprune.flow.atoms import Atoms
from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node, Value


def broadcast_dims(ctx: FlowContext, node: Node, shapes_and_dims: list[tuple[tuple, list[Atoms]]], shape) -> list[Atoms]:
    """Batch dims of several operands broadcast together (right-aligned, like element-wise ops)."""
    out = []
    for axis in range(len(shape)):
        size = shape[axis]
        found = [d[axis - len(shape)] for s, d in shapes_and_dims
                 if len(s) >= len(shape) - axis and s[axis - len(shape)] == size]
        if not found:
            out.append(ctx.fresh_pinned(size, pinned_reason(node, "broadcast batch dim")))
            continue
        for other in found[1:]:
            ctx.atoms.unify(found[0], other)
        out.append(found[0])
    return out


def matmul_dims(ctx: FlowContext, node: Node, a: Value, b: Value, out: Value) -> list[Atoms]:
    da, db = ctx.dims(a), ctx.dims(b)
    if a.ndim == 1 and b.ndim == 1:
        ctx.atoms.unify(da[0], db[0])
        return []
    if a.ndim == 1:
        ctx.atoms.unify(da[0], db[-2])
        return broadcast_dims(ctx, node, [(b.shape[:-2], db[:-2])], b.shape[:-2]) + [db[-1]]
    if b.ndim == 1:
        ctx.atoms.unify(da[-1], db[0])
        return list(da[:-1])
    ctx.atoms.unify(da[-1], db[-2])
    batch = broadcast_dims(ctx, node, [(a.shape[:-2], da[:-2]), (b.shape[:-2], db[:-2])], out.shape[:-2])
    return batch + [da[-2], db[-1]]


@register_op_rule("matmul", "mm", "bmm")
def matmul_rule(ctx: FlowContext, node: Node) -> None:
    a, b = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    ctx.set_dims(out, matmul_dims(ctx, node, a, b, out))


@register_op_rule("addmm", "baddbmm", "addbmm", "addmv")
def addmm_rule(ctx: FlowContext, node: Node) -> None:
    bias, a, b = node.inputs[0], node.inputs[1], node.inputs[2]
    out = node.outputs[0]
    dims = matmul_dims(ctx, node, a, b, out)
    for axis, atoms in enumerate(ctx.dims(bias)):
        k = axis - bias.ndim
        if bias.shape[k] == out.shape[k]:
            ctx.atoms.unify(atoms, dims[k])
    ctx.set_dims(out, dims)


@register_op_rule("linear")
def linear_rule(ctx: FlowContext, node: Node) -> None:
    """``F.linear(x, weight, bias)``: weight rows are the output features, columns the input's."""
    x, weight = node.inputs[0], node.inputs[1]
    dx, dw = ctx.dims(x), ctx.dims(weight)
    if weight.ndim == 1:
        ctx.atoms.unify(dx[-1], dw[0])
        ctx.set_dims(node.outputs[0], list(dx[:-1]))
        return
    ctx.atoms.unify(dx[-1], dw[1])
    for bias in node.inputs[2:]:
        ctx.atoms.unify(ctx.dims(bias)[0], dw[0])
    ctx.set_dims(node.outputs[0], list(dx[:-1]) + [dw[0]])


@register_op_rule("einsum")
def einsum_rule(ctx: FlowContext, node: Node) -> None:
    """Each subscript letter is one channel space shared by every operand that carries it."""
    equation = node.args[0].replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    letters: dict[str, Atoms] = {}
    ellipsis: list[tuple[tuple, list[Atoms]]] = []
    for term, value in zip(lhs.split(","), node.inputs):
        dims = ctx.dims(value)
        head, sep, tail = term.partition("...")
        n_ell = value.ndim - len(head) - len(tail) if sep else 0
        for letter, atoms in zip(head, dims[: len(head)]):
            _bind(ctx, letters, letter, atoms, node)
        ellipsis.append((value.shape[len(head): len(head) + n_ell], dims[len(head): len(head) + n_ell]))
        for letter, atoms in zip(tail, dims[len(head) + n_ell:]):
            _bind(ctx, letters, letter, atoms, node)
    if "->" not in equation:
        rhs = ("..." if "..." in lhs else "") + "".join(
            sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
    out = node.outputs[0]
    head, _, tail = rhs.partition("...")
    n_ell = out.ndim - len(head) - len(tail)
    ell_dims = broadcast_dims(ctx, node, ellipsis, out.shape[len(head): len(head) + n_ell]) if n_ell > 0 else []
    ctx.set_dims(out, [letters[c] for c in head] + ell_dims + [letters[c] for c in tail])


def _bind(ctx: FlowContext, letters: dict, letter: str, atoms: Atoms, node: Node) -> None:
    if letter in letters:
        if letters[letter].numel() == atoms.numel():
            ctx.atoms.unify(letters[letter], atoms)
        else:  # a broadcast size-1 subscript
            ctx.atoms.pin(atoms, pinned_reason(node, f"broadcast subscript {letter}"))
    else:
        letters[letter] = atoms


def grouped_heads(ctx: FlowContext, q_heads: Atoms, kv_heads: Atoms) -> None:
    """Query head ``i`` reads kv head ``i // groups``: q heads are (kv head x repeat) products."""
    groups = q_heads.numel() // kv_heads.numel()
    repeat = ctx.atoms.fresh(groups)
    ctx.atoms.unify(q_heads, ctx.atoms.product([kv_heads, repeat]))


@register_op_rule("scaled_dot_product_attention")
def sdpa_rule(ctx: FlowContext, node: Node) -> None:
    """softmax(q k^T) v: q and k share their last dim, k and v their token dim, all share heads."""
    q, k, v = node.inputs[:3]
    dq, dk, dv = ctx.dims(q), ctx.dims(k), ctx.dims(v)
    ctx.atoms.unify(dq[-1], dk[-1])
    ctx.atoms.unify(dk[-2], dv[-2])
    for axis in range(-q.ndim, -2):
        ctx.atoms.unify(dk[axis], dv[axis])
        if q.shape[axis] == k.shape[axis]:
            ctx.atoms.unify(dq[axis], dk[axis])
        elif q.shape[axis] % k.shape[axis] == 0:
            grouped_heads(ctx, dq[axis], dk[axis])
        else:
            ctx.atoms.pin(dq[axis], pinned_reason(node, "mismatched heads"))
    out = node.outputs[0]
    scores_shape = q.shape[:-1] + (k.shape[-2],)
    scores_dims = list(dq[:-1]) + [dk[-2]]
    for mask in node.inputs[3:]:  # an additive / boolean mask broadcasts against the scores
        for axis, atoms in zip(range(-mask.ndim, 0), ctx.dims(mask)):
            if mask.shape[axis] == scores_shape[axis] and mask.shape[axis] != 1:
                ctx.atoms.unify(atoms, scores_dims[axis])
    ctx.set_dims(out, list(dq[:-1]) + [dv[-1]])


@register_op_rule("embedding")
def embedding_rule(ctx: FlowContext, node: Node) -> None:
    """``F.embedding(ids, weight)``: rows are looked up (pinned), columns are the output features."""
    ids, weight = node.inputs[0], node.inputs[1]
    dw = ctx.dims(weight)
    ctx.atoms.pin(dw[0], pinned_reason(node, "embedding rows are looked up by index"))
    ctx.set_dims(node.outputs[0], list(ctx.dims(ids)) + [dw[1]])
