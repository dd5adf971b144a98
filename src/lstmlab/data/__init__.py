"""Corpora, tokenisers and batching (see each module's docstring)."""

from lstmlab.data.batching import BPTTBatches, LMBatch, evaluation_windows, make_streams
from lstmlab.data.shakespeare import shakespeare_splits
from lstmlab.data.splits import TextSplits
from lstmlab.data.text import CorpusError, load_splits, read_corpus
from lstmlab.data.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_dict, train_tokenizer

__all__ = [
    "BPETokenizer", "BPTTBatches", "CharTokenizer", "CorpusError", "LMBatch", "TextSplits",
    "evaluation_windows", "load_splits", "make_streams", "read_corpus", "shakespeare_splits",
    "tokenizer_from_dict", "train_tokenizer",
]
