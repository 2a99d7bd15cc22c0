"""The seed README's section 2 code, run as written: only ``import torch_pruning as tp`` becomes
``import structprune as tp``, ``pretrained=True`` is dropped (no downloads) and the input is
64x64 instead of 224x224.  Each snippet runs with ``ch_sparsity`` and with ``pruning_ratio``."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F
import torchvision

import structprune as tp

HIGH_LEVEL = """
import torch
from torchvision.models import resnet18
import structprune as tp

model = resnet18()

# Importance criteria
example_inputs = torch.randn(1, 3, 64, 64)
imp = tp.importance.MagnitudeImportance(p=2)

ignored_layers = []
for m in model.modules():
    if isinstance(m, torch.nn.Linear) and m.out_features == 1000:
        ignored_layers.append(m) # DO NOT prune the final classifier!

iterative_steps = 5 # progressive pruning
pruner = tp.pruner.MagnitudePruner(
    model,
    example_inputs,
    importance=imp,
    iterative_steps=iterative_steps,
    ch_sparsity=0.5, # remove 50% channels, ResNet18 = {64, 128, 256, 512} => ResNet18_Half = {32, 64, 128, 256}
    ignored_layers=ignored_layers,
)

base_macs, base_nparams = tp.utils.count_ops_and_params(model, example_inputs)
for i in range(iterative_steps):
    pruner.step()
    macs, nparams = tp.utils.count_ops_and_params(model, example_inputs)
    # finetune your model here
    # finetune(model)
    # ...
"""

SPARSE_TRAINING = """
for epoch in range(epochs):
    model.train()
    for i, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        out = model(data)
        loss = F.cross_entropy(out, target)
        loss.backward()
        pruner.regularize(model) # <== for sparse learning
        optimizer.step()
"""

INTERACTIVE = """
for i in range(iterative_steps):
    for group in pruner.step(interactive=True): # Warning: groups must be handled sequentially. Do not keep them as a list.
        print(group) 
        # do whatever you like with the group 
        # ...
        group.prune() # you should manually call the group.prune()
        # group.prune(idxs=[0, 2, 6]) # you can even change the pruning behaviour with the idxs parameter
    macs, nparams = tp.utils.count_ops_and_params(model, example_inputs)
    # finetune your model here
    # finetune(model)
    # ...
"""

RATIO_NAMES = ["ch_sparsity", "pruning_ratio"]


def _run(code: str, ratio_name: str, pruner_name: str = "MagnitudePruner", scope: dict | None = None) -> dict:
    code = code.replace("ch_sparsity=", f"{ratio_name}=").replace("MagnitudePruner", pruner_name)
    scope = {} if scope is None else scope
    torch.manual_seed(0)
    exec(textwrap.dedent(code), scope)
    return scope


SETUP = HIGH_LEVEL[: HIGH_LEVEL.index("base_macs")]  # the example up to its pruning loop


@pytest.mark.parametrize("ratio_name", RATIO_NAMES)
def test_high_level_example(ratio_name):
    scope = _run(HIGH_LEVEL, ratio_name)
    model = scope["model"]
    widths = [model.layer1[0].conv1.out_channels, model.layer2[0].conv1.out_channels,
              model.layer3[0].conv1.out_channels, model.layer4[0].conv1.out_channels]
    assert widths == [32, 64, 128, 256]  # ResNet18_Half, as the comment in the snippet says
    assert scope["macs"] < 0.3 * scope["base_macs"] and scope["nparams"] < 0.3 * scope["base_nparams"]
    assert model(scope["example_inputs"]).shape == (1, 1000)


@pytest.mark.parametrize("ratio_name", RATIO_NAMES)
@pytest.mark.parametrize("pruner_name", ["BNScalePruner", "GroupNormPruner"])
def test_sparse_training_loop(ratio_name, pruner_name):
    scope = _run(SETUP, ratio_name, pruner_name)
    model = scope["model"]
    loader = [(torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2,))) for _ in range(2)]
    scope.update(epochs=1, train_loader=loader, device="cpu", F=F,
                 optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    before = model.layer1[0].bn1.weight.detach().clone()
    exec(textwrap.dedent(SPARSE_TRAINING), scope)
    assert not torch.equal(model.layer1[0].bn1.weight.detach(), before)
    for _ in range(scope["iterative_steps"]):
        scope["pruner"].step()
    assert model.layer1[0].conv1.out_channels == 32 and model.layer4[0].conv1.out_channels == 256


@pytest.mark.parametrize("ratio_name", RATIO_NAMES)
def test_interactive_loop(ratio_name, capsys):
    scope = _run(SETUP, ratio_name)
    exec(textwrap.dedent(INTERACTIVE), scope)
    assert "Pruning Group" in capsys.readouterr().out
    model = scope["model"]
    assert model.layer1[0].conv1.out_channels == 32 and model.layer4[0].conv1.out_channels == 256
    base_macs, _ = tp.utils.count_ops_and_params(torchvision.models.resnet18(), scope["example_inputs"])
    assert scope["macs"] < 0.3 * base_macs
