"""Chat prompts for instruct students: the record as a user turn rendered by the tokenizer's own chat template.

Same interface as :class:`iga.models.prompting.PromptFormat`, so the trainer's collator, the generator and the
hidden-state collector take it unchanged: the student sees ``prompt(record)`` (system turn if any, the user turn
and the opening of the assistant turn) and learns to continue it with ``completion(record)``, the gold CoT. The
template's end-of-turn text (``<|im_end|>\\n`` for SmolLM2) is not part of the completion: the collator appends
the EOS token, which for ChatML-style templates is exactly that end-of-turn marker (see :attr:`end_of_turn`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Appended to every question; the answer line is what our extraction reads first.
DEFAULT_INSTRUCTION = (
    'Reason step by step, then end with the sentence "The answer is" followed by your final answer.'
)
# A string no template rewrites, used to find where the assistant's content starts and ends.
_PROBE = "\x1eIGA-PROBE\x1e"


class ChatPromptFormat:
    """Prompt = the chat template applied to ``[system?, user]`` with the generation prompt; completion = the CoT.

    Args:
        tokenizer: a tokenizer with a ``chat_template`` (instruct models). Base models have none: use
            :class:`~iga.models.prompting.PromptFormat`.
        system: optional system message (``None`` keeps the template's default, if it has one).
        instruction: appended to the question as its own paragraph.
        show_choices: for ``label``/``entity`` records, list the ``label_space`` in the user turn.

    Example (a tiny ChatML template on a tokenizer trained here):
        >>> from iga.models.tokenizer import train_bpe_tokenizer
        >>> tok = train_bpe_tokenizer(["Q: 2 + 3? Step 1: 2 + 3 = 5."] * 20, vocab_size=300)
        >>> tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>\\n{% endfor %}"
        ...                      "{% if add_generation_prompt %}<|assistant|>{% endif %}")
        >>> fmt = ChatPromptFormat(tok, instruction="Think.")
        >>> fmt.prompt({"question": "What is 2 + 3?"})
        '<|user|>What is 2 + 3?\\n\\nThink.<eos>\\n<|assistant|>'
        >>> fmt.end_of_turn
        '<eos>\\n'
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        system: str | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
        show_choices: bool = True,
    ) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "tokenizer has no chat_template (a base model, not an instruct model); use the plain "
                "PromptFormat ('Q: ...\\nA:\\n') for it"
            )
        self.tokenizer, self.system, self.instruction = tokenizer, system, instruction
        self.show_choices = show_choices
        self.end_of_turn = self._probe()

    def _render(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
        if not isinstance(text, str):
            raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
        return text

    def _probe(self) -> str:
        """Check that prompt + content is a prefix of the full conversation; return what follows the content.

        Templates that rewrite the assistant's content (e.g. strip or inject reasoning blocks) would make the
        trained text differ from what generation sees; they are refused here rather than trained on silently.
        """
        user = self.messages({"question": "probe"})
        prompt = self._render(user, generation_prompt=True)
        full = self._render([*user, {"role": "assistant", "content": _PROBE}], generation_prompt=False)
        if not full.startswith(prompt + _PROBE):
            raise ValueError(
                "the tokenizer's chat template does not render the assistant turn as <generation prompt> + "
                "<content>, so training text and generation prompts would disagree; use PromptFormat instead"
            )
        return full[len(prompt) + len(_PROBE) :]

    def user_message(self, record: Mapping) -> str:
        """The user turn: the question, the allowed answers (for labels, if asked), then the instruction."""
        parts = [str(record["question"]).strip()]
        labels: Sequence[str] = record.get("label_space") or []
        if self.show_choices and labels and record.get("answer_type") in ("label", "entity"):
            parts.append("Possible answers: " + ", ".join(labels) + ".")
        if self.instruction:
            parts.append(self.instruction)
        return "\n\n".join(parts)

    def messages(self, record: Mapping) -> list[dict[str, str]]:
        """``[system?, user]`` for ``record``."""
        msgs = [{"role": "system", "content": self.system}] if self.system is not None else []
        return [*msgs, {"role": "user", "content": self.user_message(record)}]

    def prompt(self, record: Mapping) -> str:
        return self._render(self.messages(record), generation_prompt=True)

    def completion(self, record: Mapping, cot_field: str = "gold_cot") -> str:
        return record[cot_field]

    def text(self, record: Mapping, cot_field: str = "gold_cot") -> str:
        return self.prompt(record) + self.completion(record, cot_field)

    def anchor_offsets(self, record: Mapping) -> list[int]:
        """Character offsets of the CoT anchors in :meth:`text` (empty if the record has none)."""
        shift = len(self.prompt(record))
        anchors: Sequence[int] = record.get("anchors") or []
        return [shift + int(a) for a in anchors]


PROMPT_FORMATS = ("auto", "plain", "chat")


def make_prompt_format(name: str, tokenizer: Any, *, trained: str | None = None) -> Any:
    """``plain`` (:class:`~iga.models.prompting.PromptFormat`), ``chat`` (:class:`ChatPromptFormat`) or ``auto``.

    ``auto`` is ``trained`` when given (the format a run was trained with), else chat exactly when the tokenizer
    has a chat template.
    """
    from iga.models.prompting import PromptFormat

    if name not in PROMPT_FORMATS:
        raise ValueError(f"prompt format: must be one of {', '.join(PROMPT_FORMATS)}, got {name!r}")
    if name == "auto":
        name = trained or ("chat" if getattr(tokenizer, "chat_template", None) else "plain")
    return ChatPromptFormat(tokenizer) if name == "chat" else PromptFormat()
