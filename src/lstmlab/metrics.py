"""Metrics for sequence models, and the metrics log (JSONL or CSV).

Losses are mean nats per token (natural log), as `torch.nn.functional.cross_entropy`
gives them. For characters we report bits per character (nats / ln 2); for words or
subwords, perplexity (exp of nats). BLEU and chrF come from sacrebleu
(`translation_scores`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any


def bits_per_char(nats_per_char: float) -> float:
    """Mean nats per character -> bits per character."""
    return nats_per_char / math.log(2)


def perplexity(nats_per_token: float) -> float:
    """Mean nats per token -> perplexity (capped at exp(50) so it stays a finite number)."""
    return math.exp(min(nats_per_token, 50.0))


def loss_summary(nats: float, unit: str) -> dict[str, float]:
    """{"loss": nats, "bits_per_char": ...} for unit "char", {..., "perplexity": ...} for
    "token"; the loss alone for any other unit (a sequence's MSE has no perplexity)."""
    if unit == "char":
        return {"loss": nats, "bits_per_char": bits_per_char(nats)}
    if unit == "token":
        return {"loss": nats, "perplexity": perplexity(nats)}
    return {"loss": nats}


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacrebleu, on detokenised text, its default 13a tokenisation)
    of `hypotheses` against one reference each, with sacrebleu's signatures."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"expected one reference per hypothesis, got {len(references)} references "
                         f"for {len(hypotheses)} hypotheses")
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {"bleu": bleu_score.score, "chrf": chrf_score.score,
            "signature": {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}}


def speech_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Word and character error rates (jiwer) of transcripts against references, over the
    whole set (errors / reference words or characters), not a mean of per-utterance rates."""
    import jiwer

    if len(hypotheses) != len(references):
        raise ValueError(f"expected one hypothesis per reference, got {len(hypotheses)} and {len(references)}")
    if not references:
        raise ValueError("no utterances to score")
    kept = [(h, r) for h, r in zip(hypotheses, references) if r.strip()]
    hyps, refs = [h for h, _ in kept], [r for _, r in kept]
    return {"wer": jiwer.wer(refs, hyps), "cer": jiwer.cer(refs, hyps)}


class MetricsLog:
    """Append one record per call to a JSONL or CSV file (format from the suffix).

    The CSV header is `fields` (or the first record's keys), and grows with the
    metrics: a record with a new key rewrites the file (atomically) with the wider
    header, earlier rows leaving the new columns empty, so no metric is ever dropped.
    """

    def __init__(self, path: str | Path, fields: list[str] | None = None):
        self.path = Path(path)
        if self.path.suffix not in (".jsonl", ".csv"):
            raise ValueError(f"metrics log must end in .jsonl or .csv, got {self.path.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._csv_fields: list[str] | None = list(fields) if fields else None
        self._header_written = self.path.exists() and self.path.stat().st_size > 0
        if self.path.suffix == ".csv" and self.path.exists() and self.path.stat().st_size:
            with self.path.open(newline="") as handle:
                self._csv_fields = next(csv.reader(handle))

    def write(self, record: dict[str, Any]) -> None:
        if self.path.suffix == ".jsonl":
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            return
        self._write_csv(record)

    def _write_csv(self, record: dict[str, Any]) -> None:
        if self._csv_fields is None:
            self._csv_fields = list(record)
        new = [key for key in record if key not in self._csv_fields]
        if new and self._header_written:
            self._widen_header(new)
        elif new:
            self._csv_fields += new
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._csv_fields)
            if not self._header_written:
                writer.writeheader()
                self._header_written = True
            writer.writerow(record)

    def _widen_header(self, new: list[str]) -> None:
        """Rewrite the CSV with `new` columns appended to its header (temp file + rename)."""
        rows = read_log(self.path)
        self._csv_fields = [*self._csv_fields, *new]
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._csv_fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.path)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL or CSV metrics log (CSV values stay strings, empty cells dropped)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
