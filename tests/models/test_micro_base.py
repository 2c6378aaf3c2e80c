"""The micro regime's skill base: deterministic rows, a saved HF folder, the cache and the shipped copy."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest

from iga.isomers.domains import load_domains
from iga.models.micro_base import BASE_MARKER, MicroBaseConfig, keyed_config, train_micro_base
from iga.models.micro_base_cache import ensure_micro_base, micro_base_path, shipped_base
from iga.models.micro_rows import MicroRows
from iga.models.word_tokenizer import build_word_tokenizer

TINY = MicroBaseConfig(student="micro", steps=2, batch_size=4, warmup_steps=1, polish_steps=0)


@pytest.fixture(scope="module")
def rows():
    domains = load_domains()
    # skill and narrative rows only (the drill tests below turn drills on)
    cfg = MicroBaseConfig(batch_size=32, drill_share=0.0, late_drill_share=None)
    return MicroRows(cfg, build_word_tokenizer(domains=domains), domains)


def test_rows_are_a_pure_function_of_step(rows):
    a, b = rows.batch(3), rows.batch(3)
    assert all((a[k] == b[k]).all() for k in a)
    assert not (
        rows.batch(4)["input_ids"].shape == a["input_ids"].shape
        and (rows.batch(4)["input_ids"] == a["input_ids"]).all()
    )


def test_skill_rows_train_on_the_cot_only_and_narratives_on_every_token(rows):
    tok = rows.tok
    q = tok.convert_tokens_to_ids("q")
    kinds = {"skill": 0, "narrative": 0}
    for step in range(4):
        batch = rows.batch(step)
        for ids, labels, mask in zip(
            batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True
        ):
            n = int(mask.sum())
            if int(ids[0]) == q:  # "Q: ..." : a neutral-wording problem
                kinds["skill"] += 1
                supervised = labels[:n] != -100
                assert not supervised[0] and supervised[n - 1]  # prompt masked, CoT + EOS supervised
                text = tok.decode(ids[:n][supervised])
                assert text.startswith("step 1") and "the answer is" in text
            else:
                kinds["narrative"] += 1
                assert (labels[:n] == ids[:n]).all()
                assert "?" not in tok.decode(ids[:n])
    assert kinds["skill"] > kinds["narrative"] > 0  # skill_share 0.8


def test_narratives_cover_every_domain(rows):
    assert {d.name for d in rows.narrative_domains} == set(load_domains())


@pytest.mark.parametrize(
    "change, field",
    [
        ({"skill_share": 1.5}, "skill_share"),
        ({"skeleton_weights": (1.0, 2.0)}, "skeleton_weights"),
        ({"steps": 0}, "steps"),
        ({"hold_fraction": -0.1}, "hold_fraction"),
        ({"late_start": 2.0}, "late_start"),
        ({"late_weights": (0.0, 0.0, 0.0, 0.0)}, "late_weights"),
        ({"skill_words": "letters"}, "skill_words"),
        ({"late_skill_words": "letters"}, "late_skill_words"),
        ({"drill_share": 1.2}, "drill_share"),
        ({"drill_reverse_share": -0.5}, "drill_reverse_share"),
        ({"fact_drill_share": 1.5}, "fact_drill_share"),
        ({"late_fact_drill_share": -0.1}, "late_fact_drill_share"),
        ({"fact_drill_rows": "m04"}, "fact_drill_rows"),
    ],
)
def test_bad_config_names_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        MicroBaseConfig(**change)


def test_train_saves_a_loadable_word_level_base(tmp_path):
    from iga.models.pretrain import load_base
    from iga.models.word_tokenizer import is_word_level

    out = train_micro_base(TINY, tmp_path / "base")
    info = json.loads((out / BASE_MARKER).read_text())
    assert (
        info["kind"] == "micro" and info["micro_base_config"]["steps"] == 2 and len(info["loss_curve"]) == 1
    )
    model, tok = load_base(out)
    assert is_word_level(tok) and model.get_input_embeddings().weight.shape[0] == len(tok)


def test_ensure_caches_and_prefers_the_shipped_copy(tmp_path, monkeypatch):
    import iga.models.micro_base_cache as mb

    path, built = ensure_micro_base(TINY, cache_dir=tmp_path / "cache")
    assert built and path == micro_base_path(TINY, cache_dir=tmp_path / "cache")
    assert ensure_micro_base(TINY, cache_dir=tmp_path / "cache") == (path, False)
    # an empty cache takes the shipped copy instead of training
    monkeypatch.setattr(mb, "shipped_base", lambda name: path if name == path.name else None)
    monkeypatch.setattr(mb, "train_micro_base", lambda *a, **k: pytest.fail("trained instead of copying"))
    copied, built = ensure_micro_base(TINY, cache_dir=tmp_path / "other")
    assert (
        not built and (copied / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()
    )


def test_an_interrupted_base_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    from safetensors.torch import load_file

    from iga.models.micro_base import CHECKPOINT

    cfg = dataclasses.replace(TINY, steps=4, warmup_steps=2)
    whole = train_micro_base(cfg, tmp_path / "whole", checkpoint_every=0)
    part = tmp_path / "part"
    train_micro_base(cfg, part, checkpoint_every=1, stop_after=1)  # stops after step 1 of 4
    assert (part / CHECKPOINT).is_file() and not (part / BASE_MARKER).exists()
    train_micro_base(cfg, part, stop_after=1)  # steps 2 (checkpoint at the stop)
    train_micro_base(cfg, part)  # steps 3-4, then the base
    assert not (part / CHECKPOINT).exists()
    a, b = load_file(whole / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    info_a, info_b = (json.loads((d / BASE_MARKER).read_text()) for d in (whole, part))
    assert info_a["loss_curve"] == info_b["loss_curve"] and info_a["final_loss"] == info_b["final_loss"]
    assert info_a["resumed_from_steps"] == [] and info_b["resumed_from_steps"] == [1, 2]


def test_a_checkpoint_of_another_base_is_refused_naming_the_file(tmp_path):
    from iga.models.micro_base import CHECKPOINT

    train_micro_base(dataclasses.replace(TINY, steps=3), tmp_path, stop_after=1)
    with pytest.raises(ValueError, match=f"{CHECKPOINT}: checkpoint of another base"):
        train_micro_base(dataclasses.replace(TINY, steps=3, lr=1e-3), tmp_path)


def test_ensure_resumes_a_partial_build_and_starts_over_without_a_checkpoint(tmp_path, monkeypatch):
    import iga.models.micro_base_cache as mb

    cfg = dataclasses.replace(TINY, steps=3)
    partial = micro_base_path(cfg, cache_dir=tmp_path).with_name(
        micro_base_path(cfg, cache_dir=tmp_path).name + ".partial"
    )
    train_micro_base(cfg, partial, stop_after=2)
    seen = []
    real = mb.train_micro_base
    monkeypatch.setattr(
        mb,
        "train_micro_base",
        lambda c, out, **k: seen.append((out / mb.CHECKPOINT).is_file()) or real(c, out, **k),
    )
    path, built = ensure_micro_base(cfg, cache_dir=tmp_path)
    info = json.loads((path / BASE_MARKER).read_text())
    assert built and seen == [True] and info["resumed_from_steps"] == [2]


def test_no_base_is_shipped_for_an_unknown_name():
    assert shipped_base("micro-tiny-0000000000000000") is None


def test_late_weights_switch_the_skeleton_mix_at_late_start():
    domains = load_domains()
    tok = build_word_tokenizer(domains=domains)
    cfg = MicroBaseConfig(
        batch_size=16,
        steps=10,
        skill_share=1.0,
        skeleton_weights=(1, 0, 0, 0),
        late_weights=(0, 0, 0, 1),
        late_start=0.5,
        drill_share=0.0,
        late_drill_share=None,
    )
    rows = MicroRows(cfg, tok, domains)

    def first_words(step):
        batch = rows.batch(step)
        texts = [
            tok.decode(ids[mask.bool()])
            for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
        ]
        return {text.replace(":", " ").split()[1] for text in texts}

    assert first_words(4) == {"x"}  # M01: "Q: X is 5. ..."
    assert first_words(5) == {"there"}  # M04: "Q: There are 2 ws and ..."


def test_lr_schedule_warms_up_holds_the_peak_then_decays_to_a_tenth():
    from iga.models.micro_base import _lr_factor

    cfg = MicroBaseConfig(steps=110, warmup_steps=10, hold_fraction=0.5)
    factors = [_lr_factor(s, cfg) for s in range(111)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0
    assert all(f == 1.0 for f in factors[10:60]) and factors[61] < 1.0
    assert factors[110] == pytest.approx(0.1) and all(a >= b for a, b in itertools.pairwise(factors[10:]))


def _model_loss(model, batch):
    """The model's own shifted loss on the full logits, in the model's dtype (HF's loss casts to float32)."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100
    )


@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_backward_by_length_gives_the_models_own_loss_and_gradient_in_float64(rows, chunks):
    import torch

    from iga.models.micro_base import _backward_by_length
    from iga.models.students import build_student

    model = build_student("micro", rows.tok, seed=0).double()
    batch = rows.batch(3)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()  # the groups are cut to different widths
    expected = _model_loss(model, batch)
    assert expected.dtype == torch.float64
    expected.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    assert _backward_by_length(model, batch, chunks) == pytest.approx(float(expected), rel=1e-12)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, want[name], rtol=1e-10, atol=1e-13, msg=name)


def test_pooled_skill_words_draw_every_domains_atoms_into_the_neutral_wording(rows):
    import dataclasses

    domains = load_domains()
    worded = MicroRows(dataclasses.replace(rows.cfg, skill_words="all_domains"), rows.tok, domains)
    pooled = set(worded.skill_domain.pool("M02_mp_forward", "atoms"))
    for d in domains.values():
        assert set(d.pool("M02_mp_forward", "atoms")) <= pooled
    assert (
        worded.skill_domain.sections["M02_mp_forward"].premises
        == domains["symbolic"].sections["M02_mp_forward"].premises
    )
    letters = MicroRows(MicroBaseConfig(skill_words="skill_domain"), rows.tok, domains)
    assert letters.skill_domain is domains["symbolic"]


def test_late_skill_words_switch_from_letters_to_every_domains_words(rows):
    domains = load_domains()
    cfg = MicroBaseConfig(
        skill_words="skill_domain", late_skill_words="all_domains", steps=10, late_start=0.5
    )
    curriculum = MicroRows(cfg, rows.tok, domains)
    assert curriculum.skill_domain is domains["symbolic"]
    assert set(curriculum.late_skill_domain.pool("M03_order", "things")) >= set(
        domains["sports"].pool("M03_order", "things")
    )


def test_drill_rows_repeat_pooled_words_and_leave_the_other_rows_unchanged(rows):
    import dataclasses

    drilled = MicroRows(dataclasses.replace(rows.cfg, drill_share=0.5), rows.tok, rows.domains)
    eos = rows.tok.eos_token_id
    allowed = {t for w in drilled.drill_words for t in rows.tok(w, add_special_tokens=False)["input_ids"]}
    n_drill = 0
    for i in range(64):
        ids, labels = drilled.row(2, i)
        first = [t for t, lab in zip(ids, labels, strict=True) if lab == -100]
        repeat = [lab for lab in labels if lab != -100]
        if first[-1:] == rows.tok(".", add_special_tokens=False)["input_ids"] and repeat == [
            *first[:-1],
            eos,
        ]:
            n_drill += 1
            assert set(first[:-1]) <= allowed
        else:  # a skill or narrative row: the same as without drills (its own random stream)
            assert (ids, labels) == rows.row(2, i)
    assert 20 <= n_drill <= 44  # about half of 64
    # every domain's pooled words are drill words (held-out ones included)
    assert {"fever", "orvex"} <= {w.lower() for w in drilled.drill_words}


def test_fact_drills_are_true_sums_over_the_whole_table_with_the_loss_on_the_results(rows):
    import dataclasses
    import re

    from iga.isomers.rng import HashRng
    from iga.isomers.skeletons.m01_arith_walk import CAP

    drilled = MicroRows(dataclasses.replace(rows.cfg, fact_drill_share=0.5), rows.tok, rows.domains)
    tok, eos = rows.tok, rows.tok.eos_token_id
    firsts = set()
    for i in range(300):
        ids, labels = drilled.fact_row(HashRng(0, "facts", i))
        facts = re.findall(r"(\d+) ([+-]) (\d+) = (\d+) \.", tok.decode(ids[:-1]).replace(".", " ."))
        assert 6 <= len(facts) <= 10 and ids[-1] == eos
        for a, op, b, c in facts:
            assert int(c) == (int(a) + int(b) if op == "+" else int(a) - int(b)) and 0 <= int(c) <= CAP
            assert 1 <= int(b) <= 9
            firsts.add(int(a))
        # the loss is on each result and its full stop, then EOS; the question half is masked
        want = [t for _, _, _, c in facts for t in tok(f"{c} .", add_special_tokens=False)["input_ids"]]
        assert [lab for lab in labels if lab != -100] == [*want, eos]
    assert firsts == set(range(CAP + 1))  # every first operand, the rare ones (>= 20) included
    n_fact = 0
    for i in range(64):  # a row is a fact drill about half the time; every other row is unchanged
        got = drilled.row(2, i)
        if got != rows.row(2, i):
            n_fact += 1
            assert got == drilled.fact_row(HashRng(rows.cfg.seed, "micro-base", 2, i).child("fact-row"))
    assert 20 <= n_fact <= 44


def test_fact_drills_from_m01_rows_replace_only_m01_skill_rows(rows):
    import dataclasses
    import re

    from iga.isomers.rng import HashRng

    cfg = dataclasses.replace(rows.cfg, fact_drill_share=1.0, fact_drill_rows="m01")
    drilled = MicroRows(cfg, rows.tok, rows.domains)
    replaced = 0
    for i in range(96):
        plain, got = rows.row(3, i), drilled.row(3, i)
        # an M01 skill row: a question (its prompt is masked) whose chain of thought opens with a sum (M04's
        # steps write sums too, after a name: "step 1 : xs 8 - 3 = 5")
        text = rows.tok.decode([t for t, lab in zip(*plain, strict=True) if lab != -100])
        m01_skill = plain[1][0] == -100 and re.match(r"\s*step 1 : \d+ [+-] \d+ = \d+", text) is not None
        # with share 1, every M01 skill row becomes a drill and every other row is the plain base's
        assert (got != plain) == m01_skill
        if m01_skill:
            replaced += 1
            assert got == drilled.fact_row(HashRng(cfg.seed, "micro-base", 3, i).child("fact-row"))
    assert replaced >= 3


def test_fact_drill_share_keys_the_cache_only_when_set():
    assert micro_base_path(MicroBaseConfig(fact_drill_share=0.0)) == micro_base_path(MicroBaseConfig())
    assert micro_base_path(MicroBaseConfig(fact_drill_share=0.1)) != micro_base_path(MicroBaseConfig())
    assert micro_base_path(MicroBaseConfig(late_fact_drill_share=None)) == micro_base_path(MicroBaseConfig())
    assert micro_base_path(
        MicroBaseConfig(fact_drill_share=0.1, late_fact_drill_share=0.0)
    ) != micro_base_path(MicroBaseConfig(fact_drill_share=0.1))


def test_late_drill_share_replaces_the_drill_share_in_the_second_phase(rows):
    import dataclasses

    cfg = dataclasses.replace(rows.cfg, steps=10, late_start=0.5, drill_share=0.5, late_drill_share=0.0)
    drilled = MicroRows(cfg, rows.tok, rows.domains)

    def drills(step: int) -> int:
        return sum(_is_drill(drilled, step, i) for i in range(32))

    assert drills(2) > 5 and drills(7) == 0


def test_late_fact_drill_share_replaces_the_fact_drill_share_in_the_second_phase(rows):
    import dataclasses

    cfg = dataclasses.replace(
        rows.cfg, steps=10, late_start=0.5, fact_drill_share=0.5, late_fact_drill_share=0.0
    )
    drilled = MicroRows(cfg, rows.tok, rows.domains)
    plain = MicroRows(dataclasses.replace(cfg, fact_drill_share=0.0), rows.tok, rows.domains)

    def facts(step: int) -> int:
        return sum(drilled.row(step, i) != plain.row(step, i) for i in range(32))

    assert facts(2) > 5 and facts(7) == 0


def _is_drill(rows_, step, i):
    ids, labels = rows_.row(step, i)
    first = [t for t, lab in zip(ids, labels, strict=True) if lab == -100]
    repeat = [lab for lab in labels if lab != -100]
    return repeat[:-1] == first[:-1]


def test_reversed_drills_repeat_the_words_backwards(rows):
    import dataclasses

    from iga.isomers.rng import HashRng

    cfg = dataclasses.replace(rows.cfg, drill_share=1.0, drill_reverse_share=0.5)
    drilled = MicroRows(cfg, rows.tok, rows.domains)
    kinds = []
    for i in range(40):
        ids, labels = drilled.drill_row(HashRng(0, "test", i))
        first = [t for t, lab in zip(ids, labels, strict=True) if lab == -100][:-1]
        repeat = [lab for lab in labels if lab != -100][:-1]
        assert repeat in (first, first[::-1])
        kinds.append(repeat == first[::-1] and repeat != first)
    assert 8 <= sum(kinds) <= 32


def test_the_default_base_is_shipped_for_the_current_config_and_domain_files():
    # A change to MicroBaseConfig's defaults or to any domain file changes the cache name: then rebuild the shipped
    # copy (`make shipped-base`), or the demo's first run trains the base itself (~15 min).
    name = micro_base_path(MicroBaseConfig()).name
    shipped = shipped_base(name)
    assert shipped is not None, f"no shipped base named {name}: run `make shipped-base`"
    meta = json.loads((shipped / BASE_MARKER).read_text())
    # fields added since (micro_base.KEYED_UNLESS) are recorded, like keyed, only when set
    assert meta["micro_base_config"] == json.loads(json.dumps(keyed_config(MicroBaseConfig())))


def test_polish_settings_key_the_cache_only_with_a_polish_phase():
    from iga.models.micro_base import parent_config

    plain = micro_base_path(MicroBaseConfig(polish_steps=0))
    assert (
        micro_base_path(MicroBaseConfig(polish_steps=0, polish_lr=1e-3, polish_fact_drill_share=0.5)) == plain
    )
    polished = MicroBaseConfig(polish_steps=400)
    assert micro_base_path(polished) != plain
    assert micro_base_path(dataclasses.replace(polished, polish_lr=1e-3)) != micro_base_path(polished)
    assert parent_config(dataclasses.replace(polished, polish_lr=1e-3, lr=1e-3)) == MicroBaseConfig(
        lr=1e-3, polish_steps=0
    )
    # the default's parent is the base shipped before the polish existed: same config, same folder name
    assert micro_base_path(parent_config(MicroBaseConfig())).name == "micro-tiny-c9e981926ffb9845"


@pytest.mark.parametrize(
    ("field", "value"), [("polish_steps", -1), ("polish_lr", 0.0), ("polish_fact_drill_share", 1.5)]
)
def test_bad_polish_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        MicroBaseConfig(**{field: value})


def test_polish_rows_follow_the_base_s_and_carry_arithmetic_drills(rows):
    from iga.isomers.rng import HashRng

    cfg = dataclasses.replace(rows.cfg, steps=10, polish_steps=5, polish_fact_drill_share=0.5)
    polished = MicroRows(cfg, rows.tok, rows.domains)
    plain = MicroRows(dataclasses.replace(cfg, polish_steps=0), rows.tok, rows.domains)
    # the base's own steps are the unpolished base's rows, whatever the polish settings
    assert all(polished.row(s, i) == plain.row(s, i) for s in (0, 9) for i in range(32))
    drills = [
        i
        for i in range(64)
        if polished.row(11, i) == polished.fact_row(HashRng(cfg.seed, "micro-base", 11, i).child("fact-row"))
    ]
    assert 20 <= len(drills) <= 44
    # every other polish row is the second phase's row of that step
    assert all(polished.row(11, i) == plain.row(11, i) for i in range(64) if i not in drills)


def test_a_polished_base_is_its_parent_plus_the_polish(tmp_path):
    from safetensors.torch import load_file

    from iga.models.micro_base import parent_config, polish_micro_base

    cfg = dataclasses.replace(TINY, polish_steps=2)
    with pytest.raises(ValueError, match="polish_steps"):
        train_micro_base(cfg, tmp_path / "refused")
    path, built = ensure_micro_base(cfg, cache_dir=tmp_path / "cache")
    parent = micro_base_path(parent_config(cfg), cache_dir=tmp_path / "cache")
    assert built and (parent / BASE_MARKER).is_file() and path != parent
    info, parent_info = (json.loads((p / BASE_MARKER).read_text()) for p in (path, parent))
    assert info["parent"] == parent.name and info["micro_base_config"]["polish_steps"] == 2
    assert info["seconds"] == pytest.approx(parent_info["seconds"] + info["polish_seconds"], abs=0.02)
    weights, parent_weights = (load_file(p / "model.safetensors") for p in (path, parent))
    assert weights.keys() == parent_weights.keys()
    assert any(not (weights[k] == parent_weights[k]).all() for k in weights)
    assert ensure_micro_base(cfg, cache_dir=tmp_path / "cache") == (path, False)
    # a polish on top of another base is refused, naming the folder
    other = dataclasses.replace(cfg, lr=1e-3)
    with pytest.raises(ValueError, match=parent.name):
        polish_micro_base(other, parent, tmp_path / "wrong")
