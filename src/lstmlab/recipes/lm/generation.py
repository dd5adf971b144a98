"""Sampling text from a language model, one token at a time with the stateful step."""

from __future__ import annotations

from typing import Any, Callable

import torch

from lstmlab.models.lm import LanguageModel


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator) -> int:
    """Draw one token id from logits (V,): temperature scaling, then the top-k most likely."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if 0 < top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))


@torch.no_grad()
def check_request(tokenizer: Any, prime: str, length: int, temperature: float, top_k: int) -> None:
    """ValueError naming what is wrong with a sampling request (before anything is printed)."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = always the likeliest token), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = all tokens), got {top_k}")
    prime_ids = tokenizer.encode(prime or "\n")
    if tokenizer.decode(prime_ids) != (prime or "\n"):
        unseen = sorted({char for char in prime if tokenizer.decode(tokenizer.encode(char)) != char})
        raise ValueError(f"the prime text has characters the model never saw in training: "
                         f"{', '.join(map(repr, unseen)) or repr(prime)}; leave them out")


def generate(model: LanguageModel, tokenizer: Any, prime: str = "\n", length: int = 500,
             temperature: float = 0.8, top_k: int = 0, seed: int = 0,
             on_text: Callable[[str], None] | None = None) -> str:
    """Continue `prime` by `length` tokens; `on_text` receives each new piece of text as
    it is sampled (streaming). The same seed gives the same text."""
    check_request(tokenizer, prime, length, temperature, top_k)
    prime_ids = tokenizer.encode(prime or "\n")
    if not prime_ids:
        raise ValueError(f"the prime text {prime!r} encodes to no tokens")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    state = None
    for token in prime_ids:  # feed the prime through the stateful step
        logits, state = model.step(torch.tensor([token]), state)
    generated: list[int] = []
    shown = ""
    for _ in range(length):
        token = sample_next(logits[0], temperature, top_k, generator)
        generated.append(token)
        logits, state = model.step(torch.tensor([token]), state)
        if on_text is not None:  # decode the whole tail: subword bytes may complete a character later
            text = tokenizer.decode(generated)
            if text.startswith(shown) and not text.endswith("\ufffd"):
                on_text(text[len(shown):])
                shown = text
    text = tokenizer.decode(generated)
    if on_text is not None and text != shown and text.startswith(shown):
        on_text(text[len(shown):])
    return text
