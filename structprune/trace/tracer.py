"""Record one real forward pass at the torch-function level.

A :class:`torch.overrides.TorchFunctionMode` sees every torch function and tensor method with its
exact arguments; forward hooks mark *leaf* modules (those with a registered layer pruner), whose
insides are not recorded.  Works under ``torch.no_grad()`` and with tensors on the ``meta`` device.

A custom ``torch.autograd.Function`` is recorded as one op named after its class (its forward may
do what the trace cannot see), so it pins channels until a rule is registered for it; one that
runs leaf modules inside (reentrant checkpointing) is traced through instead.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from structprune.trace.calling import SPREAD, WHOLE, call_model, call_style, can_pass_whole, neither_call_worked
from structprune.trace.calling import run_forward  # noqa: F401  (re-exported: callers import it from here)
from structprune.trace.gc_pause import gc_paused
from structprune.trace.meta import can_run_on_meta, meta_call_args, meta_shortcut, meta_weights
from structprune.trace.nodes import Node, ShapeEscape, ShapeRead, Trace, Value
from structprune.trace.structure import _LEAVES, flatten_tensors, map_tensors
from structprune.trace.traced_int import TracedInt, escape_log, paused_escapes, traced_int_attributes

logger = logging.getLogger(__name__)

IGNORED_OPS = {"shape", "size", "dim", "ndimension", "numel", "__len__", "is_floating_point",
               "is_complex", "get_device", "dtype", "device", "is_contiguous", "requires_grad",
               "__format__", "__repr__", "__bool__", "item", "tolist", "data_ptr", "stride",
               "storage_offset", "element_size", "nelement", "__hash__", "__eq_ident__"}
SIZE_OPS = {"shape", "size", "__len__", "numel", "nelement"}


def op_name(func: Callable) -> str:
    """A stable name for a torch function, tensor method or tensor property."""
    name = getattr(func, "__name__", None) or str(func)
    if name in ("__get__", "__set__"):
        owner = getattr(func, "__self__", None)
        name = getattr(owner, "__name__", name)
    return name


class _LiveValues:
    """``tensor -> Value`` for tensors still alive, held weakly.

    Plain ``weakref.ref`` entries keyed by ``id`` and checked on read (a reused id or a dead tensor
    reads as absent): several times cheaper per lookup than ``torch.utils.weak.WeakIdKeyDictionary``,
    whose references call back into the tensor on every read, and the trace looks up every
    argument of every op.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, Value]] = {}

    def __setitem__(self, tensor: torch.Tensor, value: Value) -> None:
        self._entries[id(tensor)] = (weakref.ref(tensor), value)

    def get(self, tensor: torch.Tensor) -> Value | None:
        entry = self._entries.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else None

class _Recorder(TorchFunctionMode):
    def __init__(self, model: nn.Module, is_leaf: Callable[[nn.Module], bool],
                 real_device: torch.device | None = None, named: list[tuple[str, nn.Module]] | None = None):
        super().__init__()
        self.on_meta = real_device is not None  # weights on meta: see structprune.trace.meta
        self.real_device = real_device
        self.model = model
        self._is_leaf, self._leaf = is_leaf, {}
        self.named = list(model.named_modules()) if named is None else named  # the walk, shared
        self.names: dict[nn.Module, str] = {}
        for n, m in self.named:  # each module's first name: a walk that skips modules seen before
            self.names.setdefault(m, n)  # reaches every module first where the full walk does
        self.tensor_names = self._tensor_names(self.named)
        self.values: list[Value] = []
        self.nodes: list[Node] = []
        self.shape_reads: list[ShapeRead] = []
        self.escapes: list[ShapeEscape] = []
        self.live = _LiveValues()
        self.keep_alive: list[torch.Tensor] = []
        self.scope: list[str] = []
        self.leaf_depth = 0
        self.pending: list[tuple[tuple, dict]] = []
        self.leaf_calls = 0

    @staticmethod
    def _tensor_names(named: list[tuple[str, nn.Module]]) -> dict[int, tuple[str, str, torch.Tensor]]:
        """Each buffer's, then each parameter's first name (``named_buffers()`` /
        ``named_parameters()``), from the model's ``named_modules()``."""
        names: dict[int, tuple[str, str, torch.Tensor]] = {}
        for kind, store in (("buffer", "_buffers"), ("param", "_parameters")):
            for prefix, module in named:
                for key, t in getattr(module, store).items():
                    if t is not None:
                        names.setdefault(id(t), (kind, f"{prefix}.{key}" if prefix else key, t))
        return names

    def is_leaf(self, module: nn.Module) -> bool:
        """``is_leaf(module)``, asked once per module (hooks ask for every call)."""
        found = self._leaf.get(id(module))
        if found is None:
            found = self._leaf[id(module)] = bool(self._is_leaf(module))
        return found

    # values -------------------------------------------------------------------------------
    def new_value(self, t: torch.Tensor, origin: str, producer: Node | None = None, name: str = "") -> Value:
        v = Value(len(self.values), tuple(map(int, t.shape)), origin, producer, name)
        self.values.append(v)
        self.live[t] = v
        if origin in ("param", "buffer", "constant"):
            self.keep_alive.append(t)
        return v

    def value_of(self, t: torch.Tensor) -> Value:
        v = self.live.get(t)
        if v is not None:
            return v
        known = self.tensor_names.get(id(t))
        if known is not None and known[2] is t:
            return self.new_value(t, known[0], name=known[1])
        return self.new_value(t, "constant")

    def to_values(self, obj: Any) -> tuple[Any, list[Value]]:
        kind = type(obj)
        if kind is dict and not obj:
            return {}, []
        if (kind is tuple or kind is list) and all(type(o) in _LEAVES or isinstance(o, torch.Tensor) for o in obj):
            items = [o if type(o) in _LEAVES else self.value_of(o) for o in obj]  # a flat call: no walk
            found = [v for v, o in zip(items, obj) if v is not o]
            return (tuple(items) if kind is tuple else items), found
        found: list[Value] = []

        def convert(t: torch.Tensor) -> Value:
            v = self.value_of(t)
            found.append(v)
            return v

        return map_tensors(obj, convert), found

    def note_shape_read(self, tensor: torch.Tensor, which: tuple) -> Value:
        """Remember that code read (some of) ``tensor``'s sizes here: a later reshape may use them."""
        value = self.value_of(tensor)
        axes = tuple(int(a) % max(value.ndim, 1) for a in which if isinstance(a, int)) or tuple(range(value.ndim))
        self.shape_reads.append(ShapeRead(len(self.nodes), self.scope[-1] if self.scope else "", value, axes))
        return value

    def shape_read(self, name: str, tensor: torch.Tensor, which: tuple, out: Any) -> Any:
        """``x.shape`` / ``x.size(d)`` give TracedInts naming the dims they were read from;
        ``len(x)`` and ``x.numel()`` give plain ints, so they count as a lost provenance."""
        value = self.note_shape_read(tensor, which if name == "size" else (0,) if name == "__len__" else ())
        if isinstance(out, torch.Size):
            return torch.Size(TracedInt.read(n, value, a) for a, n in enumerate(out))
        if name == "size" and type(out) is int and which and isinstance(which[0], int):
            return TracedInt.read(out, value, int(which[0]) % max(value.ndim, 1))
        self.note_escape()
        return out

    def note_escape(self) -> None:
        """A number computed from a traced shape became a plain int or a float here."""
        self.escapes.append(ShapeEscape(len(self.nodes), self.scope[-1] if self.scope else ""))

    # recording ----------------------------------------------------------------------------
    def record(self, op: str, func, args, kwargs, outputs: list[torch.Tensor], module=None) -> Node:
        vargs, inputs = self.to_values(args)
        vkwargs, kw_inputs = self.to_values(kwargs)
        node = Node(len(self.nodes), op, func, vargs, vkwargs, inputs + kw_inputs, [],
                    self.scope[-1] if self.scope else "", module, self.names.get(module, "") if module is not None else "")
        for v in node.inputs:
            if v.producer is not None and (not v.producer.users or v.producer.users[-1] is not node):
                v.producer.users.append(node)
        node.outputs = [self.new_value(t, "op", node) for t in outputs]
        self.nodes.append(node)
        return node

    def __torch_function__(self, func, types, args=(), kwargs=None):
        with paused_escapes():
            return self._handle(func, args, kwargs or {})

    def _handle(self, func, args, kwargs):
        name = op_name(func)
        if self.on_meta and name not in IGNORED_OPS:
            call_args, call_kwargs = meta_call_args(name, args, kwargs, self.real_device)
            out = meta_shortcut(name, call_args, call_kwargs)
            if out is None:
                out = func(*call_args, **call_kwargs)
        else:
            out = func(*args, **kwargs)
        if self.leaf_depth:
            return out
        if name in SIZE_OPS and args and isinstance(args[0], torch.Tensor):
            return self.shape_read(name, args[0], args[1:] + tuple(kwargs.values()), out)
        if name in IGNORED_OPS:
            return out
        outputs = flatten_tensors(out)
        if name == "__setitem__" and args and isinstance(args[0], torch.Tensor):
            outputs = [args[0]]
        if outputs:
            self.record(name, func, args, kwargs, outputs)
        return out

    # module hooks -------------------------------------------------------------------------
    def pre_hook(self, module, args, kwargs):
        if self.is_leaf(module):
            self._leaf_pre(module, args, kwargs)
        else:
            self.scope.append(self.names.get(module, ""))

    def post_hook(self, module, args, kwargs, output):
        if self.is_leaf(module):
            self._leaf_post(module, args, kwargs, output)
        else:
            self.scope.pop()

    def _leaf_pre(self, module, args, kwargs):
        """:meth:`pre_hook` for a module known to be a leaf."""
        self.scope.append(self.names.get(module, ""))
        if self.leaf_depth == 0:
            self.pending.append((args, kwargs))
        self.leaf_depth += 1

    def _leaf_post(self, module, args, kwargs, output):
        """:meth:`post_hook` for a module known to be a leaf."""
        self.scope.pop()
        self.leaf_depth -= 1
        if self.leaf_depth == 0:  # the outermost leaf: record it as one op
            with paused_escapes(), torch._C.DisableTorchFunction():  # the recorder's own shape reads
                args, kwargs = self.pending.pop()
                self.record(type(module).__name__, None, args, kwargs, flatten_tensors(output), module)
                self.leaf_calls += 1

    def _enter_hook(self, name: str) -> Callable:
        """:meth:`pre_hook` for a module that is no leaf, its name bound (the hook runs per call)."""
        scope = self.scope

        def enter(module, args, kwargs) -> None:
            scope.append(name)

        return enter

    def _leave(self, module, args, kwargs, output) -> None:
        """:meth:`post_hook` for a module that is no leaf."""
        self.scope.pop()

    # custom autograd functions ------------------------------------------------------------
    def call_function(self, cls: type, apply: Callable, args: tuple, kwargs: dict) -> Any:
        start, calls = len(self.nodes), self.leaf_calls
        out = apply.__get__(None, cls)(*args, **kwargs)
        if self.leaf_depth or self.leaf_calls != calls:
            return out
        self.drop_nodes_from(start)
        outputs = flatten_tensors(out)
        if outputs:
            self.record(cls.__name__, cls, args, kwargs, outputs)
        return out

    def drop_nodes_from(self, start: int) -> None:
        for node in self.nodes[start:]:
            for v in node.inputs:
                if v.producer is not None and v.producer.index < start:
                    v.producer.users = [u for u in v.producer.users if u.index < start]
        del self.nodes[start:]

    def patch_autograd_function(self, stack: ExitStack) -> None:
        function = torch.autograd.Function
        original = function.__dict__["apply"]
        recorder = self

        def apply(cls, *args, **kwargs):
            return recorder.call_function(cls, original, args, kwargs)

        function.apply = classmethod(apply)
        stack.callback(setattr, function, "apply", original)

    def hooks(self, stack: ExitStack) -> None:
        """A pre- and a post-hook (with kwargs, always called) on every module, removed on exit.

        Written into each module's hook tables directly, under one id per kind (what
        ``register_forward_pre_hook`` / ``register_forward_hook`` do, without a handle per module:
        a model has hundreds of modules, and the trace is rebuilt for every pruner)."""
        modules = [module for _, module in self.named]
        if not all(hasattr(m, "_forward_hooks_always_called") for m in modules[:1]):
            for module in modules:  # a torch without these tables: its public calls
                stack.callback(module.register_forward_pre_hook(self.pre_hook, with_kwargs=True).remove)
                stack.callback(module.register_forward_hook(self.post_hook, with_kwargs=True, always_call=True).remove)
            return
        pre, post = RemovableHandle(OrderedDict()).id, RemovableHandle(OrderedDict()).id  # ids no hook has
        for module in modules:
            leaf = self.is_leaf(module)  # a module inside no leaf only enters and leaves its scope
            module._forward_pre_hooks[pre] = self._leaf_pre if leaf else self._enter_hook(self.names.get(module, ""))
            module._forward_pre_hooks_with_kwargs[pre] = True
            module._forward_hooks[post] = self._leaf_post if leaf else self._leave
            module._forward_hooks_with_kwargs[post] = True
            module._forward_hooks_always_called[post] = True
        stack.callback(_remove_hooks, modules, pre, post)


def _remove_hooks(modules: list[nn.Module], pre: int, post: int) -> None:
    for module in modules:
        module._forward_pre_hooks.pop(pre, None)
        module._forward_pre_hooks_with_kwargs.pop(pre, None)
        for table in (module._forward_hooks, module._forward_hooks_with_kwargs, module._forward_hooks_always_called):
            table.pop(post, None)


@contextmanager
def buffers_restored(model: nn.Module) -> Iterator[None]:
    """Put every buffer back as it was on exit: a forward in training mode updates batch-norm
    running statistics (towards the example input's) and counters, which tracing must not do."""
    saved = [(module, name, buffer, buffer.detach().clone()) for module in model.modules()
             for name, buffer in module._buffers.items() if buffer is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, name, buffer, value in saved:
                buffer.copy_(value)
                module._buffers[name] = buffer


@gc_paused
def trace_model(
    model: nn.Module,
    example_inputs: Any,
    is_leaf: Callable[[nn.Module], bool],
    forward_fn: Callable | None = None,
    output_transform: Callable | None = None,
    meta_first: bool = True,
    named: list[tuple[str, nn.Module]] | None = None,
) -> Trace:
    """Run ``model`` once on ``example_inputs`` and record every call (the model is not changed).

    The model runs in eval mode (BatchNorm with a batch of one works, dropout is off); every
    module's ``training`` flag is restored afterwards.  Inputs follow Torch-Pruning's calling
    conventions (:mod:`structprune.trace.calling`); if spreading a sequence fails, the trace
    starts again with the sequence passed whole.

    With ``meta_first`` (default) the forward first runs with ``meta`` stand-ins of the weights
    (:mod:`structprune.trace.meta`): the trace records shapes only, so it is the same trace
    without the arithmetic.  Code that reads values computed from weights raises there, and the
    real forward is traced instead.  ``named``: ``list(model.named_modules())`` when the caller has it.
    """
    style = None if forward_fn is not None else call_style(model, example_inputs)
    if named is None:  # one walk for the steps before the forward (the tree is the same); or the caller's
        named = list(model.named_modules())
    with eval_mode(model, [m for _, m in named]):
        try:
            return _trace_meta_first(model, example_inputs, is_leaf, forward_fn, output_transform, style, meta_first,
                                     named)
        except Exception as first:
            if style != SPREAD or not can_pass_whole(model, example_inputs):
                raise
            try:
                return _trace_meta_first(model, example_inputs, is_leaf, None, output_transform, WHOLE, meta_first,
                                         named)
            except Exception as second:
                raise neither_call_worked(model, first, second) from first


@contextmanager
def eval_mode(model: nn.Module, modules: list[nn.Module] | None = None) -> Iterator[None]:
    """Put every module in eval mode, and give each its own ``training`` flag back afterwards
    (``modules``: ``list(model.modules())`` when the caller has it)."""
    modules = list(model.modules()) if modules is None else modules
    flags = [(m, m.training) for m in modules]
    plain = type(model).eval is nn.Module.eval and all(
        type(m).train is _TRAIN and type(m).__setattr__ is _SETATTR and not hasattr(type(m), "training")
        for m in modules)
    if plain:  # what eval() does to each module, without its recursion and __setattr__
        for module in modules:
            module.__dict__["training"] = False
    else:
        model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            if plain:
                module.__dict__["training"] = training
            else:
                module.training = training


_TRAIN, _SETATTR = nn.Module.train, nn.Module.__setattr__


def _trace_meta_first(model, example_inputs, is_leaf, forward_fn, output_transform, style, meta_first,
                      named=None) -> Trace:
    """The trace with meta stand-ins of the weights if the model allows it, else of the real forward."""
    modules = None if named is None else [m for _, m in named]
    if meta_first and can_run_on_meta(model, modules):
        try:
            with meta_weights(model, modules):
                return _trace_once(model, example_inputs, is_leaf, forward_fn, output_transform, style, on_meta=True,
                                   named=named)
        except Exception as error:  # value-dependent code, a device mix, a kernel without meta
            logger.debug("tracing with meta weights failed (%s: %s); tracing the real forward",
                         type(error).__name__, error)
    return _trace_once(model, example_inputs, is_leaf, forward_fn, output_transform, style, named=named)


def _trace_once(model, example_inputs, is_leaf, forward_fn, output_transform, style, on_meta: bool = False,
                named=None) -> Trace:
    real = [t.device for t in flatten_tensors(example_inputs) if not t.is_meta]
    recorder = _Recorder(model, is_leaf, (real[0] if real else torch.device("cpu")) if on_meta else None, named)
    inputs = [recorder.new_value(t, "input") for t in flatten_tensors(example_inputs)]
    for t in flatten_tensors(example_inputs):
        recorder.keep_alive.append(t)
    with ExitStack() as stack:
        if not on_meta:  # on meta the buffers are stand-ins, and meta_weights puts the real ones back
            stack.enter_context(buffers_restored(model))
        recorder.hooks(stack)
        recorder.patch_autograd_function(stack)
        stack.enter_context(traced_int_attributes(model, plain_ints_after=not on_meta,
                                                 modules=[m for _, m in recorder.named]))
        stack.enter_context(escape_log(recorder.note_escape))
        with recorder:
            if forward_fn is not None:
                out = forward_fn(model, example_inputs)
            else:
                out = call_model(model, example_inputs, style)
            if output_transform is not None:
                out = output_transform(out)
    outputs = [recorder.value_of(t) for t in flatten_tensors(out)]
    return Trace(model, recorder.nodes, inputs, outputs, recorder.values, recorder.names, recorder.shape_reads,
                 recorder.escapes)
