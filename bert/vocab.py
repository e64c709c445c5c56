"""Vocabularies from a corpus: a SentencePiece model, or a whitespace vocab for ID / pre-tokenized text."""
import collections
import os

from bert import files
from bert.errors import UserInputError
from bert.tokenization import SPECIAL_TOKENS


def build_whitespace_vocab(paths, output_file, min_count=1, max_size=None, special_tokens=SPECIAL_TOKENS,
                           lower_case=False):
    """vocab.txt from whitespace-separated tokens: special tokens first, then by frequency (ties in
    alphabetical order), keeping tokens seen at least min_count times, at most max_size entries in all.
    Returns the number of entries."""
    counts = collections.Counter()
    for path in paths:
        try:
            with open(path, encoding="utf-8") as reader:
                for line in reader:
                    counts.update((line.lower() if lower_case else line).split())
        except FileNotFoundError:
            raise UserInputError(f"{path}: no such file") from None
        except UnicodeDecodeError as error:
            raise UserInputError(f"{path}: not UTF-8 (byte {error.start})") from None
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in special_tokens),
                   key=lambda w: (-counts[w], w))
    entries = list(special_tokens) + words
    if max_size:
        entries = entries[:max_size]
    files.write_text_atomic(output_file, "\n".join(entries) + "\n")
    return len(entries)


def train_sentencepiece(paths, model_prefix, vocab_size, model_type="unigram", character_coverage=0.9995,
                        lower_case=False, max_sentences=2000000):
    """Trains model_prefix.model / .vocab with BERT's special tokens as pieces:
    [PAD]=0, [UNK]=1, then [CLS], [SEP], [MASK] as user-defined symbols."""
    import sentencepiece

    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UserInputError(f"{missing[0]}: no such file")
    folder = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(folder, exist_ok=True)
    try:
        sentencepiece.SentencePieceTrainer.Train(
            input=",".join(paths), model_prefix=model_prefix, vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            pad_piece="[PAD]", unk_piece="[UNK]", user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
            normalization_rule_name="nmt_nfkc_cf" if lower_case else "nmt_nfkc",
            input_sentence_size=max_sentences, shuffle_input_sentence=True, minloglevel=2)
    except RuntimeError as error:
        raise UserInputError(f"SentencePiece training failed: {error}") from None
    return model_prefix + ".model"
