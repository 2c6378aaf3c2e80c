"""Isomer sets as HF datasets: schema, domain ids, the same tokens as iga train, chat prompts, refusals."""

from __future__ import annotations

import pytest

from iga.integrations.datasets import dataset_features, isomer_dataset, load_isomer_dataset

DOMAINS = ["math", "medicine", "law", "science"]
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(micro_base):
    from iga.models.tokenizer import load_tokenizer

    return load_tokenizer(micro_base)


def test_text_rows_are_complete_sets_with_domain_ids(iso_records):
    ds = isomer_dataset(iso_records, ["law", "math"])
    assert ds.features == dataset_features(tokenized=False)
    assert ds.num_rows == 2 * len({r["instance_id"] for r in iso_records})
    assert ds["domain"][:4] == ["law", "math", "law", "math"]
    assert ds["domain_id"][:4] == [0, 1, 0, 1]
    by_id = {r["id"]: r for r in iso_records}
    for row in ds:
        rec = by_id[row["id"]]
        assert row["instance_id"] == rec["instance_id"] and row["domain"] == rec["domain"]
        assert row["prompt"] == f"Q: {rec['question']}\nA:\n" and row["completion"] == rec["gold_cot"]


def test_tokenized_rows_equal_what_iga_train_feeds_the_model(iso_records, tokenizer):
    from iga.training.data import IsomerCollator, group_isomer_sets

    ds = isomer_dataset(iso_records, DOMAINS, tokenizer=tokenizer, tokenize=True, max_length=96)
    assert ds.features == dataset_features(tokenized=True)
    collate = IsomerCollator(tokenizer, max_length=96)
    sets = group_isomer_sets(iso_records, DOMAINS)
    expected = [collate.encode(member) for s in sets for member in s.members]
    assert [(row["input_ids"], row["labels"]) for row in ds] == [(list(i), list(lab)) for i, lab in expected]
    assert all(row["labels"][0] == -100 and row["labels"][-1] == tokenizer.eos_token_id for row in ds)


def test_chat_prompts_come_from_the_tokenizer_template(iso_records, tokenizer):
    from iga.models.chat import ChatPromptFormat

    chat_tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    chat_tok.chat_template = CHAT
    auto = isomer_dataset(iso_records, DOMAINS, tokenizer=chat_tok)  # auto: a template means chat
    expected = ChatPromptFormat(chat_tok).prompt(iso_records[0])
    assert auto[0]["prompt"] == expected and expected.startswith("<|user|>There are")
    assert isomer_dataset(iso_records, DOMAINS, tokenizer=chat_tok, prompt_format="plain")[0][
        "prompt"
    ].startswith("Q: ")
    tokenized = isomer_dataset(iso_records, DOMAINS, tokenizer=chat_tok, tokenize=True, max_length=200)[0]
    masked = tokenized["labels"].index(next(t for t in tokenized["labels"] if t != -100))
    assert chat_tok.decode(tokenized["input_ids"][:masked]).endswith(
        expected
    )  # -100 on exactly the chat prompt
    assert chat_tok.decode(tokenized["input_ids"][masked:]) == iso_records[0]["gold_cot"] + chat_tok.eos_token


def test_loads_a_built_split_folder_and_the_load_split_dataset(iso_data, iso_records):
    from iga.isomers.hf import load_split

    from_dir = load_isomer_dataset(iso_data, "train", DOMAINS)
    assert from_dir.to_list() == isomer_dataset(iso_records, DOMAINS).to_list()
    assert isomer_dataset(load_split(iso_data / "train.jsonl"), DOMAINS).to_list() == from_dir.to_list()


def test_refusals_name_the_problem(iso_records, tokenizer, tmp_path):
    incomplete = [r for r in iso_records if not (r["instance_id"] == "train-2" and r["domain"] == "law")]
    with pytest.raises(ValueError, match="'train-2' is missing domain\\(s\\) \\['law'\\]"):
        isomer_dataset(incomplete, DOMAINS)
    with pytest.raises(ValueError, match="needs a tokenizer and max_length"):
        isomer_dataset(iso_records, DOMAINS, tokenizer=tokenizer, tokenize=True)
    with pytest.raises(ValueError, match="above max_length=20"):
        isomer_dataset(iso_records, DOMAINS, tokenizer=tokenizer, tokenize=True, max_length=20)
    with pytest.raises(ValueError, match="prompt_format='chat' needs the tokenizer"):
        isomer_dataset(iso_records, DOMAINS, prompt_format="chat")
    with pytest.raises(ValueError, match="no chat_template"):
        isomer_dataset(iso_records, DOMAINS, tokenizer=tokenizer, prompt_format="chat")
    with pytest.raises(TypeError, match="prompt_format must be"):
        isomer_dataset(iso_records, DOMAINS, prompt_format=3)
    with pytest.raises(FileNotFoundError, match="isomer split not found"):
        load_isomer_dataset(tmp_path, "train")
