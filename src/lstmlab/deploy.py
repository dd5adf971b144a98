"""Run an exported language model without torch: numpy and onnxruntime only.

`lstmlab export RUN` writes, for an lm run, ``lm_step.onnx``, ``tokenizer.json`` (and
``tokenizer.model`` for BPE, read with sentencepiece) and a copy of this file into the
export folder, so a machine with only numpy and onnxruntime can generate text:

    python deploy.py FOLDER --prime "JULIET:" --length 200 [--temperature 0.8] [--top-k 40] [--seed 0]

    from deploy import Generator          # the copy in the export folder (or lstmlab.deploy)
    text = Generator(FOLDER).generate("JULIET:", length=200, temperature=0.0)

The driver feeds the prime one token at a time through the step graph (token (B,),
h (L, B, P), c (L, B, H) -> logits (B, V), h_n, c_n), then samples each next token and
feeds it back. Greedy decoding (temperature 0) gives the text of `lstmlab generate
--temperature 0`; sampling uses numpy's generator, so sampled texts differ from torch's.

This file imports nothing from lstmlab or torch on purpose: it must run on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

NEWLINE_STAND_IN = "\ue000"  # BPE runs: newlines travel as this character (as lstmlab's tokenizer)


class Tokenizer:
    """The run's tokenizer from tokenizer.json: characters, or sentencepiece BPE."""

    def __init__(self, folder: Path):
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; export the run again with `lstmlab export RUN`")
        state = json.loads(path.read_text())
        self.kind = state["kind"]
        if self.kind == "char":
            self.symbols = state["symbols"]
            self.index = {symbol: i for i, symbol in enumerate(self.symbols)}
        elif self.kind == "bpe":
            import sentencepiece

            self.processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / state["model"]))
        else:
            raise ValueError(f"{path}: expected kind 'char' or 'bpe', got {self.kind!r}")

    def encode(self, text: str) -> list[int]:
        if self.kind == "char":
            return [self.index.get(character, 0) for character in text]
        return self.processor.encode(text.replace("\n", NEWLINE_STAND_IN))

    def decode(self, ids: list[int]) -> str:
        if self.kind == "char":
            return "".join(self.symbols[i] for i in ids)
        return self.processor.decode(list(ids)).replace(NEWLINE_STAND_IN, "\n")


class Generator:
    """Text generation from an exported LM step graph (see the module docstring)."""

    def __init__(self, folder: str | Path, threads: int = 1):
        import onnxruntime

        self.folder = Path(folder)
        graph = self.folder / "lm_step.onnx"
        if not graph.is_file():
            raise FileNotFoundError(f"{graph}: missing; `lstmlab export RUN` writes it for an lm run")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer(self.folder)
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        self.h_shape, self.c_shape = shapes["h"], shapes["c"]  # [L, "batch", P], [L, "batch", H]

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        return (np.zeros((self.h_shape[0], batch, self.h_shape[2]), np.float32),
                np.zeros((self.c_shape[0], batch, self.c_shape[2]), np.float32))

    def step(self, tokens: np.ndarray, state: tuple[np.ndarray, np.ndarray]):
        """tokens (B,) int64 -> (logits (B, V), new state)."""
        logits, h, c = self.session.run(["logits", "h_n", "c_n"],
                                        {"token": np.asarray(tokens, np.int64), "h": state[0], "c": state[1]})
        return logits, (h, c)

    def generate(self, prime: str = "\n", length: int = 200, temperature: float = 0.8, top_k: int = 0,
                 seed: int = 0, on_text=None) -> str:
        """Continue `prime` by `length` tokens; `on_text` gets each new piece of text (streaming)."""
        if length < 0 or temperature < 0 or top_k < 0:
            raise ValueError(f"expected length, temperature and top_k >= 0, got {length}, {temperature}, {top_k}")
        ids = self.tokenizer.encode(prime or "\n")
        if not ids:
            raise ValueError(f"the prime text {prime!r} encodes to no tokens")
        rng = np.random.default_rng(seed)
        state = self.initial_state()
        for token in ids:
            logits, state = self.step(np.array([token]), state)
        generated: list[int] = []
        shown = ""
        for _ in range(length):
            token = sample(logits[0], temperature, top_k, rng)
            generated.append(token)
            logits, state = self.step(np.array([token]), state)
            if on_text is not None:  # decode the whole tail: subword bytes may complete a character later
                text = self.tokenizer.decode(generated)
                if text.startswith(shown) and not text.endswith("\ufffd"):
                    on_text(text[len(shown):])
                    shown = text
        text = self.tokenizer.decode(generated)
        if on_text is not None and text != shown and text.startswith(shown):
            on_text(text[len(shown):])
        return text


def sample(logits: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator) -> int:
    """One token id from logits (V,): argmax at temperature 0, else softmax(logits / T) over the top k."""
    if temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    if 0 < top_k < scaled.size:
        threshold = np.sort(scaled)[-top_k]
        scaled = np.where(scaled < threshold, -np.inf, scaled)
    probabilities = np.exp(scaled - scaled.max())
    return int(rng.choice(scaled.size, p=probabilities / probabilities.sum()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="generate text from an exported lstmlab language model")
    parser.add_argument("folder", help="the export folder (lm_step.onnx, tokenizer.json)")
    parser.add_argument("--prime", default="\n", help="text to continue (default a newline)")
    parser.add_argument("--length", type=int, default=200, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = always the likeliest token")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        generator = Generator(args.folder)
        print(args.prime, end="", flush=True)  # as `lstmlab generate`: the prime, then its continuation
        generator.generate(args.prime, args.length, args.temperature, args.top_k, args.seed,
                           on_text=lambda piece: print(piece, end="", flush=True))
    except (ValueError, FileNotFoundError) as error:
        print(f"deploy: error: {error}", file=sys.stderr)
        return 2
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
