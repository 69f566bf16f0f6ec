"""A user's model read as an MLP the stacked kernels train (:mod:`noisereg.engine.lowering`), or why not.

The model's forward is traced with ``torch.fx`` (an ``nn.Sequential`` or a module of the user's own
class alike) and must be one chain, each step taking the previous one's output and nothing else:
an optional flatten of each sample (``nn.Flatten()``, ``torch.flatten(x, 1)``, ``x.flatten(1)``);
``nn.Linear`` layers with biases, each but the last followed by an activation (a module such as
``nn.ReLU()``, a function such as ``F.relu``/``torch.tanh``, or a method such as ``x.relu()``, with
torch's default arguments; one kind throughout); ``nn.Dropout`` and ``nn.Identity`` modules anywhere
before the last Linear (an identity is a place to put noise); after the last Linear optionally
``nn.Identity`` modules and one reshape of the output (``nn.Flatten``, ``squeeze``, ``flatten``).
The model has no parameters but those Linear layers', no buffers and no hooks of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

from noisereg.engine.replicas import ACTIVATION_MODULES
from noisereg.engine.specs import MLPSpec
from noisereg.engine.vocabulary import Activation

__all__ = ["ForwardStep", "Layout", "activation_name", "mlp_of"]

# the engine's table of activation modules, read backwards; an identity is a place, not an activation
_MODULES = {cls: name for name, cls in ACTIVATION_MODULES.items() if name != "identity"}
# the arguments a module must have at torch's defaults (the kernels' closed forms assume them)
_ARGUMENTS: dict[type[nn.Module], dict[str, Any]] = {
    nn.GELU: {"approximate": "none"},
    nn.ELU: {"alpha": 1.0},
    nn.LeakyReLU: {"negative_slope": 0.01},
    nn.Softplus: {"beta": 1.0, "threshold": 20.0},
}
# function -> (activation, the names of its arguments after the input, the values they must have)
_FUNCTIONS: dict[Any, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    F.relu: ("relu", ("inplace",), {}),
    torch.relu: ("relu", (), {}),
    F.relu_: ("relu", (), {}),
    torch.tanh: ("tanh", (), {}),
    F.tanh: ("tanh", (), {}),
    torch.sigmoid: ("sigmoid", (), {}),
    F.sigmoid: ("sigmoid", (), {}),
    F.silu: ("silu", ("inplace",), {}),
    F.selu: ("selu", ("inplace",), {}),
    torch.selu: ("selu", (), {}),
    F.gelu: ("gelu", ("approximate",), {"approximate": "none"}),
    F.elu: ("elu", ("alpha", "inplace"), {"alpha": 1.0}),
    F.leaky_relu: ("leaky_relu", ("negative_slope", "inplace"), {"negative_slope": 0.01}),
    F.softplus: ("softplus", ("beta", "threshold"), {"beta": 1.0, "threshold": 20.0}),
}
_METHODS = {
    "relu": "relu",
    "relu_": "relu",
    "tanh": "tanh",
    "tanh_": "tanh",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
}
_RESHAPES = ("squeeze", "flatten")  # what may follow the last Linear: the output's shape only


def _flatten_samples(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1)


def activation_name(module: nn.Module) -> str | None:
    """The kernels' name of an activation module at torch's default arguments, or None."""
    name = _MODULES.get(type(module))
    required = _ARGUMENTS.get(type(module), {})
    return name if name is not None and all(getattr(module, k) == v for k, v in required.items()) else None


@dataclasses.dataclass
class ForwardStep:
    """One step of a model's forward: its ``kind`` ("flatten", "linear", "activation", "dropout",
    "identity" or "reshape"), the module's ``name`` (None for a function or method) and ``value``:
    the module, the activation's name, or the reshape as a function."""

    kind: str
    name: str | None
    value: Any


@dataclasses.dataclass(frozen=True)
class Layout:
    """A user's MLP as the kernels take it: the network; the names of its Linear layers in order; its
    ``steps`` in order (flatten, Linear, activation, dropout and identity steps, without the output's
    reshape); the reshape of the output after the last Linear, if any; whether each sample is
    flattened first."""

    spec: MLPSpec
    linears: list[str]
    steps: list[ForwardStep]
    tail: Callable[[torch.Tensor], torch.Tensor] | None
    head: bool


def _constants(node: fx.Node) -> bool:
    values = [*node.args[1:], *node.kwargs.values()]
    return not any(isinstance(v, fx.Node) for v in values)


def _function_activation(node: fx.Node) -> str | None:
    entry = _FUNCTIONS.get(node.target)
    if entry is None:
        return None
    name, params, required = entry
    extra = node.args[1:]
    if len(extra) > len(params) or any(k not in params for k in node.kwargs):
        return None
    given = {**dict(zip(params, extra, strict=False)), **node.kwargs}
    return name if all(given.get(k, v) == v for k, v in required.items()) else None


def _step(node: fx.Node, modules: dict[str, nn.Module]) -> ForwardStep | None:
    """The node as a step of the chain, or None where it is none of the steps the kernels know."""
    if node.op == "call_module":
        if len(node.args) != 1 or node.kwargs:
            return None
        module = modules[str(node.target)]
        name = str(node.target)
        if type(module) is nn.Linear:
            return ForwardStep("linear", name, module)
        if type(module) is nn.Dropout:
            return ForwardStep("dropout", name, module)
        if type(module) is nn.Identity:
            return ForwardStep("identity", name, module)
        if type(module) is nn.Flatten:
            kind = "flatten" if (module.start_dim, module.end_dim) == (1, -1) else "reshape"
            return ForwardStep(kind, name, module)
        act = activation_name(module)
        return None if act is None else ForwardStep("activation", name, act)
    if not _constants(node):
        return None
    if node.op == "call_function":
        if node.target is torch.flatten and list(node.args[1:]) in ([1], [1, -1]) and not node.kwargs:
            return ForwardStep("flatten", None, _flatten_samples)
        if node.target in (torch.flatten, torch.squeeze):
            target, args, kwargs = cast(Callable[..., torch.Tensor], node.target), node.args[1:], dict(node.kwargs)
            return ForwardStep("reshape", None, lambda t: target(t, *args, **kwargs))
        act = _function_activation(node)
        return None if act is None else ForwardStep("activation", None, act)
    if node.op == "call_method":
        method, args, kwargs = str(node.target), node.args[1:], dict(node.kwargs)
        if method == "flatten" and list(args) in ([1], [1, -1]) and not kwargs:
            return ForwardStep("flatten", None, _flatten_samples)
        if method in _RESHAPES:
            return ForwardStep("reshape", None, lambda t: getattr(t, method)(*args, **kwargs))
        if method in _METHODS and not args and not kwargs:
            return ForwardStep("activation", None, _METHODS[method])
    return None


def _trace(model: nn.Module) -> fx.Graph | str:
    """The forward's graph, the same in training and in evaluation mode (a forward that branches on
    ``self.training`` is traced down one branch only: the kernels would evaluate the other wrong)."""
    was_training = model.training
    graphs = []
    try:
        for mode in (True, False):
            model.train(mode)
            graphs.append(fx.symbolic_trace(model).graph)
    except Exception as exc:  # the user's forward: any failure means the kernels cannot read it
        return f"torch.fx cannot trace the model's forward ({type(exc).__name__})"
    finally:
        model.train(was_training)
    shown = [[(n.op, n.target, repr(n.args), repr(n.kwargs)) for n in graph.nodes] for graph in graphs]
    return graphs[0] if shown[0] == shown[1] else "the model's forward differs in training and evaluation"


def _chain(model: nn.Module) -> list[ForwardStep] | str:
    """The model's forward as a chain of steps, or why it is not one."""
    graph = _trace(model)
    if isinstance(graph, str):
        return graph
    modules = dict(model.named_modules())
    steps: list[ForwardStep] = []
    previous: fx.Node | None = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                return "the model's forward takes more than one input"
            previous = node
            continue
        first = node.args[0] if node.args else None
        if node.op == "output":
            return steps if first is previous else "the model's forward is not one chain of layers"
        if first is not previous or previous is None:
            return "the model's forward is not one chain of layers"
        step = _step(node, modules)
        if step is None:
            return f"the model's forward calls {node.target}, which the kernels do not take"
        steps.append(step)
        previous = node
    return "the model's forward returns nothing"


def mlp_of(model: nn.Module) -> Layout | str:
    """The model's :class:`Layout`, or why the kernels do not take it (see the module docstring)."""
    chain = _chain(model)
    if isinstance(chain, str):
        return chain
    head = bool(chain) and chain[0].kind == "flatten"
    while chain and chain[-1].kind == "identity":  # after the output: nothing to do, no noise to place
        chain.pop()
    # a flatten after the last Linear reshapes the output (the kernels' outputs are [R, n, out])
    tail = chain.pop().value if len(chain) > 1 and chain[-1].kind in ("reshape", "flatten") else None
    while chain and chain[-1].kind == "identity":
        chain.pop()
    linears: list[tuple[str, nn.Linear]] = []
    activations: list[str] = []
    expected = "linear"
    for step in chain[1:] if head else chain:
        if step.kind in ("dropout", "identity"):
            continue
        if step.kind != expected:
            return (
                "the model is not nn.Linear layers with biases and activations in turn (dropout and "
                "identity modules between them), ending with a Linear"
            )
        if step.kind == "linear":
            linears.append((cast(str, step.name), step.value))
        else:
            activations.append(step.value)
        expected = "activation" if expected == "linear" else "linear"
    if not linears or expected == "linear" or any(m.bias is None for _, m in linears):
        return "the model is not nn.Linear layers with biases and activations in turn, ending with a Linear"
    if chain[-1].kind != "linear":
        return "a dropout module comes after the last Linear layer"
    kinds = set(activations)
    if len(kinds) > 1:
        return "the activations are not of one kind"
    if len({name for name, _ in linears}) < len(linears):
        return "a Linear layer is used twice"
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(True for _ in model.buffers()) or any(m.__dict__.get(h) for m in model.modules() for h in hooks):
        return "the model has buffers or hooks of its own"
    names = {f"{name}.{p}" for name, _ in linears for p in ("weight", "bias")}
    if {n for n, _ in model.named_parameters()} != names:
        return "the model has parameters outside the Linear layers of its forward"
    if not all(p.requires_grad for p in model.parameters()):
        return "some parameters are frozen (requires_grad=False)"
    sizes = [m for _, m in linears]
    activation = cast(Activation, kinds.pop() if kinds else "relu")
    spec = MLPSpec(sizes[0].in_features, tuple(m.out_features for m in sizes[:-1]), sizes[-1].out_features, activation)
    return Layout(spec, [n for n, _ in linears], chain, tail, head)
