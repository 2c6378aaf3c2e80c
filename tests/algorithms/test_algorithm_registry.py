"""Algorithm registry and base: lookup, validation, loss and optimizer building."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from iga.algorithms import (
    ERM,
    IGA,
    Algorithm,
    IGAOptimizer,
    get_algorithm,
    list_algorithms,
    register_algorithm,
    registry,
)
from iga.gradients import DomainGradCapture


@pytest.fixture
def scratch_registry(monkeypatch):
    # Registrations made by a test must not leak into other tests' list_algorithms().
    list_algorithms()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_builtins_are_registered_in_order():
    names = list_algorithms()
    assert names[:2] == ["erm", "iga"]
    assert get_algorithm("erm") is ERM and get_algorithm("iga") is IGA
    assert ERM.capture_space is None and IGA.capture_space == "full"


def test_unknown_name_lists_registered_names():
    with pytest.raises(ValueError, match=r"unknown algorithm 'no_such_method'; registered: \['erm', 'iga'"):
        get_algorithm("no_such_method")


def test_register_checks_names_types_and_clashes(scratch_registry):
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_algorithm("AND-mask")
    with pytest.raises(TypeError, match="Algorithm subclasses"):
        register_algorithm("thing")(int)
    with pytest.raises(ValueError, match=r"already registered by iga\.algorithms\.erm\.ERM"):

        @register_algorithm("erm")
        class Other(Algorithm):
            pass


def test_a_loss_side_method_fits_the_base(scratch_registry):
    @dataclasses.dataclass
    class VRexHParams:
        penalty: float = 1.0

    @register_algorithm("toy_vrex")
    class ToyVRex(Algorithm):
        hparams_cls = VRexHParams

        def combine_losses(self, per_domain_losses, step):
            return per_domain_losses.mean() + self.hparams.penalty * per_domain_losses.var(correction=0)

    assert get_algorithm("toy_vrex") is ToyVRex and "toy_vrex" in list_algorithms()
    method = ToyVRex(num_domains=2, penalty=2.0)
    assert float(method.loss(torch.tensor([1.0, 3.0]), step=0)) == pytest.approx(2.0 + 2.0 * 1.0)
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['lam'\]; allowed: \['penalty'\]"):
        ToyVRex(num_domains=2, lam=1.0)


def test_loss_validates_its_input():
    erm = ERM(num_domains=3)
    assert float(erm.loss(torch.tensor([1.0, 2.0, 6.0]), step=0)) == 3.0
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        erm.loss(torch.tensor([1.0, 2.0]), step=0)
    with pytest.raises(TypeError, match="floating point"):
        erm.loss(torch.tensor([1, 2, 3]), step=0)
    with pytest.raises(ValueError, match="num_domains must be an int >= 2"):
        ERM(num_domains=1)
    with pytest.raises(ValueError, match="allowed: none"):
        ERM(num_domains=2, tau=1.0)


def test_build_optimizer_checks_the_capture_space():
    net = nn.Linear(3, 2)
    opt = ERM(num_domains=2).build_optimizer(net, net.parameters(), lr=0.1)
    assert type(opt) is torch.optim.AdamW
    with pytest.raises(ValueError, match="pass capture=None"):
        ERM(num_domains=2).build_optimizer(net, net.parameters(), DomainGradCapture(net), lr=0.1)
    iga = IGA(num_domains=2, tau=3.0)
    with pytest.raises(
        ValueError, match=r"needs a DomainGradCapture\(model, space='full'\), got space='factor'"
    ):
        iga.build_optimizer(net, net.parameters(), DomainGradCapture(net, space="factor"), lr=0.1)
    wrapped = iga.build_optimizer(net, net.parameters(), DomainGradCapture(net), lr=0.1, base="sgd")
    assert isinstance(wrapped, IGAOptimizer) and type(wrapped.base_optimizer) is torch.optim.SGD
    assert wrapped.config.tau == 3.0
    with pytest.raises(ValueError, match="no trainable parameters"):
        ERM(num_domains=2).build_optimizer(net, [], lr=0.1)


def test_stateless_methods_refuse_foreign_state():
    erm = ERM(num_domains=2)
    assert erm.state_dict() == {}
    erm.load_state_dict({})
    with pytest.raises(ValueError, match="no state to load"):
        erm.load_state_dict({"q": 1})


def test_the_listing_order_is_the_historical_one():
    # CLI listings and test ids follow this order, whichever module was imported first; a new method is appended.
    import subprocess
    import sys

    code = "import iga.algorithms.cagrad, iga.algorithms.fish; from iga.algorithms import list_algorithms as f; print(f())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(list_algorithms())
    assert list_algorithms()[:12] == [
        "erm",
        "iga",
        "irm",
        "vrex",
        "groupdro",
        "fish",
        "fishr",
        "andmask",
        "sandmask",
        "pcgrad",
        "cagrad",
        "iga_koyama",
    ]


def test_the_contract_is_declared_on_each_builtin():
    calls = {name: get_algorithm(name).trainer_call for name in list_algorithms()}
    assert {n for n, c in calls.items() if c == "loss_from_logits"} == {"irm", "fishr"}
    assert {n for n, c in calls.items() if c == "meta_step"} == {"fish"}
    clippers = {n for n in list_algorithms() if get_algorithm(n).clips_gradients}
    assert clippers == {"iga", "fish", "andmask", "sandmask", "pcgrad", "cagrad"}
    assert ERM(num_domains=2).last_metrics == {}


@dataclasses.dataclass
class _ClipHParams:
    max_grad_norm: float | None = None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            {"trainer_call": "backward"},
            r"trainer_call must be one of \('loss', 'loss_from_logits', 'meta_step'\)",
        ),
        (
            {"trainer_call": "meta_step"},
            r"trainer_call = 'meta_step' but Bad does not override meta_step\(\)",
        ),
        ({"loss_from_logits": lambda self, *a: a[0].mean()}, r"overrides loss_from_logits\(\) but declares"),
        ({"capture_space": "rows"}, "capture_space must be None or one of"),
        (
            {"trainer_call": "meta_step", "meta_step": lambda self, *a, **k: {}, "capture_space": "factor"},
            "uses no capture_space",
        ),
        ({"clips_gradients": True}, "clips_gradients = True but its hparams_cls has no max_grad_norm"),
        ({"hparams_cls": _ClipHParams}, "clips_gradients = False but its hparams_cls has max_grad_norm"),
        ({"hparams_cls": dict}, "hparams_cls must be a dataclass"),
    ],
)
def test_a_contradictory_contract_fails_when_the_class_is_defined(body, match):
    with pytest.raises(TypeError, match=match):
        type("Bad", (Algorithm,), body)


def test_a_declared_logits_side_method_is_accepted():
    class Penalised(Algorithm):
        trainer_call = "loss_from_logits"
        clips_gradients = True
        hparams_cls = _ClipHParams

        def loss_from_logits(self, per_domain_losses, logits, labels, domain_ids, step):
            return per_domain_losses.mean() + logits.square().mean()

    method = Penalised(num_domains=2, max_grad_norm=1.0)
    assert float(method.loss_from_logits(torch.ones(2), torch.zeros(1, 2, 3), None, None, 0)) == 1.0
    with pytest.raises(NotImplementedError, match="not 'meta_step'"):
        method.meta_step(lambda k: 0.0, 0)
