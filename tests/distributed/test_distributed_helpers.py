"""Single-process parts of the distributed support: the helpers, the refusals, the capture's reduction hook, the
optimizers' wiring and the trainer's ``no_sync`` choice (the 2-process behaviour is in the ``test_ddp_*`` files)."""

from __future__ import annotations

import doctest
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import iga.distributed
from iga.algorithms import IGAConfig, get_algorithm
from iga.algorithms.gradient_wrapper import FactorGradOptimizer
from iga.distributed import check_distributed_type, check_launch
from iga.gradients import DomainGradCapture, per_domain_token_loss
from iga.gradients.testing import domain_major_batch, tiny_lora_llama

CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"


def test_docstring_examples():
    result = doctest.testmod(iga.distributed, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("kind", ["FSDP", "DEEPSPEED", "MEGATRON_LM"])
@pytest.mark.parametrize(("algorithm", "space"), [("iga", "full"), ("pcgrad", "factor")])
def test_sharding_backends_are_refused_for_gradient_rewriting_methods(kind, algorithm, space):
    from accelerate.utils import DistributedType

    with pytest.raises(
        ValueError, match=rf"algorithm '{algorithm}' cannot run under {kind}: .*{space}-space"
    ):
        check_distributed_type(DistributedType[kind], algorithm=algorithm, capture_space=space)


@pytest.mark.parametrize("kind", ["NO", "MULTI_CPU", "MULTI_GPU", "MULTI_XPU"])
def test_data_parallel_backends_and_loss_side_methods_are_accepted(kind):
    check_distributed_type(kind, algorithm="iga", capture_space="full")
    check_distributed_type("FSDP", algorithm="erm", capture_space=None)


def test_a_launch_that_accelerate_sees_as_one_process_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"WORLD_SIZE=2 .* Accelerate sees 1.*`cpu: true`"):
        check_launch(1, cpu=False)
    check_launch(2, cpu=True)
    monkeypatch.delenv("WORLD_SIZE")
    check_launch(1, cpu=False)


def test_stats_scope_is_validated():
    assert IGAConfig().stats_scope == "local" and IGAConfig(stats_scope="global").stats_scope == "global"
    with pytest.raises(
        ValueError, match=r"IGAConfig.stats_scope must be one of \('local', 'global'\), got 'rank'"
    ):
        IGAConfig(stats_scope="rank")
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"stats_scope must be one of \('local', 'global'\)"):
        FactorGradOptimizer(
            torch.optim.SGD(net.parameters(), lr=0.1),
            DomainGradCapture(net, space="factor"),
            stats_scope="all",
        )


def _two_layer_backward(capture: DomainGradCapture, net: nn.Module, micro: int = 1) -> None:
    x, dom = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 0, 1])
    for m in range(micro):
        rows = slice(m * 4 // micro, (m + 1) * 4 // micro)
        with capture.domains(dom[rows], num_domains=2, sync=m == micro - 1):
            net(x[rows]).pow(2).sum(1).view(-1, 2).mean(0).mean().div(micro).backward()


def test_reducer_sees_each_layers_complete_sums_once_before_they_are_used():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    plain = DomainGradCapture(net)
    _two_layer_backward(plain, net)
    expected = {layer.name: layer.domain_grads.clone() for layer in plain.layers}
    plain.detach()

    calls = []

    def double(sums):
        calls.append([tuple(t.shape) for t in sums])
        for t in sums:
            t.mul_(2)

    cap = DomainGradCapture(net)
    cap.set_reducer(double)
    _two_layer_backward(cap, net, micro=2)  # accumulated: reduced once, at the sync micro-batch
    assert sorted(calls) == [[(2, 2, 4), (2, 2)], [(2, 4, 3), (2, 4)]]
    for layer in cap.layers:
        torch.testing.assert_close(layer.domain_grads, 2 * expected[layer.name])
    cap.detach()
    assert cap.reducer is None
    with pytest.raises(ValueError, match="factor space"):
        DomainGradCapture(net, space="factor").set_reducer(double)


K = 3


def _spy(monkeypatch, module: str, calls: list[list[tuple]] | None = None) -> list[list[tuple]]:
    calls = [] if calls is None else calls
    monkeypatch.setattr(f"{module}.all_reduce_mean", lambda ts: calls.append([tuple(t.shape) for t in ts]))
    return calls


def _step(model, optimizer, capture):
    batch = domain_major_batch(num_domains=K, seed=0)
    with capture.domains(batch["domain_ids"], num_domains=K):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        per_domain_token_loss(out.logits, batch["labels"], batch["domain_ids"], K).mean().backward()
    optimizer.step()


@pytest.mark.parametrize("scope", ["local", "global"])
def test_iga_reduces_full_sums_only_in_global_scope_and_always_the_written_grads(monkeypatch, scope):
    in_backward, in_step = (
        _spy(monkeypatch, "iga.algorithms.iga"),
        _spy(monkeypatch, "iga.algorithms.optimizer_wrapper"),  # the write of the rewritten .grad
    )
    model = tiny_lora_llama(num_layers=1, seed=0)
    capture = DomainGradCapture(model)
    optimizer = get_algorithm("iga")(num_domains=K, stats_scope=scope).build_optimizer(
        model, [p for p in model.parameters() if p.requires_grad], capture, lr=0.1
    )
    _step(model, optimizer, capture)
    full = sorted([(K, *layer.shape)] for layer in capture.layers)
    assert sorted(in_backward) == (full if scope == "global" else [])
    trainable = [tuple(p.shape) for p in model.parameters() if p.requires_grad]
    assert in_step == [trainable]


@pytest.mark.parametrize("scope", ["local", "global"])
def test_factor_wrappers_reduce_domain_grads_only_in_global_scope(monkeypatch, scope):
    # The per-domain gradients are reduced in gradient_wrapper, the written .grad in optimizer_wrapper (its base).
    calls = _spy(
        monkeypatch, "iga.algorithms.optimizer_wrapper", _spy(monkeypatch, "iga.algorithms.gradient_wrapper")
    )
    model = tiny_lora_llama(num_layers=1, seed=0)
    capture = DomainGradCapture(model, space="factor")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = get_algorithm("pcgrad")(num_domains=K).build_optimizer(model, params, capture, lr=0.1)
    optimizer.stats_scope = scope
    _step(model, optimizer, capture)
    shapes = [tuple(p.shape) for p in params]
    assert calls == ([[(K, *s) for s in shapes]] if scope == "global" else []) + [shapes]


class _FakeAccelerator:
    def __init__(self) -> None:
        self.inside_no_sync = False
        self.backward_in_no_sync: list[bool] = []

    @contextmanager
    def no_sync(self, model):
        self.inside_no_sync = True
        yield
        self.inside_no_sync = False

    def autocast(self):
        return nullcontext()

    def backward(self, loss):
        self.backward_in_no_sync.append(self.inside_no_sync)
        loss.backward()


@pytest.mark.parametrize(
    ("rewrites", "sync", "expected"),
    [(False, False, True), (False, True, False), (True, False, True), (True, True, True)],
)
def test_trainer_leaves_ddp_sync_to_the_last_micro_batch_of_methods_that_do_not_rewrite(
    rewrites, sync, expected
):
    from iga.training.run import Run

    @contextmanager
    def domains(*args, **kwargs):
        yield

    acc = _FakeAccelerator()
    weights = torch.ones(2, requires_grad=True)
    run = Run(
        cfg=SimpleNamespace(grad_accum=1, train_domains=["a", "b"]),
        accelerator=acc,
        sets=[],
        manifest={},
        algorithm=get_algorithm("erm")(num_domains=2),
        model=None,
        tokenizer=None,
        collate=None,
        capture=SimpleNamespace(domains=domains) if rewrites else None,
        teacher=None,
        trainable=[],
        optimizer=None,
        scheduler=None,
    )
    run.domain_losses = lambda batch, num_domains=None: (None, weights * 1.0)
    run.forward_backward({"domain_ids": torch.tensor([0, 1])}, 0, sync=sync)
    assert acc.backward_in_no_sync == [expected]


def test_trainer_refuses_fsdp_for_iga(monkeypatch, tmp_path):
    from iga.config import TrainConfig
    from iga.isomers.build import build_suite
    from iga.training.run import prepare_run

    class FsdpAccelerator:
        num_processes, distributed_type = 1, "FSDP"

        def __init__(self, **kwargs):
            pass

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr("accelerate.Accelerator", FsdpAccelerator)
    build_suite("tiny", tmp_path / "data")
    cfg = TrainConfig(data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "run"), algorithm="iga")
    with pytest.raises(
        ValueError, match="algorithm 'iga' cannot run under FSDP: FSDP shards the LoRA factors"
    ):
        prepare_run(cfg)


@pytest.mark.parametrize("name", ["ddp_cpu.yaml", "ddp_gpu.yaml"])
def test_shipped_accelerate_configs_select_the_multi_process_launcher(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    assert str(config.distributed_type.value) == "MULTI_GPU"  # MULTI_CPU would start one process (mpirun)
    assert config.num_processes == 2 and config.mixed_precision == "no" and not config.use_cpu
