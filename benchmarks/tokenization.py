"""Texts per second of our FullTokenizer against Hugging Face tokenizers' BertWordPieceTokenizer.

  make bench-tokenization        (creates .venv-bench with `tokenizers`, which the project never needs)

Both tokenize the 2,530 texts of ../shared/data/tokenization_reference with the same uncased vocab, in
the same process, alternating rounds; the median round is reported. Ours is timed cold (a new
tokenizer, empty caches) and warm (caches filled by earlier rounds, as in any run over a real corpus);
theirs one text per call (like ours) and as one encode_batch call (Rust, all cores).
"""
import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bert import tokenization  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "tokenization_reference")


def median_seconds(function, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cases_path = os.path.join(args.data_dir, "google_tokenizer_cases.jsonl")
    vocab = os.path.join(args.data_dir, "vocab_uncased.txt")
    if not os.path.exists(cases_path):
        sys.exit(f"{cases_path} is absent: this benchmark reads ../shared/data/tokenization_reference")
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError:
        sys.exit("Hugging Face `tokenizers` is not installed here: run `make bench-tokenization`")

    with open(cases_path, encoding="utf-8") as reader:
        texts = [json.loads(line)["text"] for line in reader]
    characters = sum(len(t) for t in texts)

    def ours_cold():
        tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
        start = time.perf_counter()
        for text in texts:
            tokenizer.tokenize(text)
        return time.perf_counter() - start  # excludes reading the vocab, as theirs below does

    warm = tokenization.FullTokenizer(vocab, do_lower_case=True)
    theirs = BertWordPieceTokenizer(vocab, lowercase=True, clean_text=True, handle_chinese_chars=True)

    def ours_warm():
        for text in texts:
            warm.tokenize(text)

    def theirs_single():
        for text in texts:
            theirs.encode(text, add_special_tokens=False)

    def theirs_batch():
        theirs.encode_batch(texts, add_special_tokens=False)

    ours_warm()  # fill the caches once
    theirs_batch()
    cold = statistics.median(ours_cold() for _ in range(args.rounds))
    results = {"ours, cold caches": cold,
               "ours, warm caches": median_seconds(ours_warm, args.rounds),
               "HF tokenizers, encode per text": median_seconds(theirs_single, args.rounds),
               "HF tokenizers, encode_batch": median_seconds(theirs_batch, args.rounds)}

    disagree = sum(warm.tokenize(t) != theirs.encode(t, add_special_tokens=False).tokens for t in texts)
    reference = results["HF tokenizers, encode per text"]
    print(f"{len(texts)} texts, {characters:,} characters, median of {args.rounds} rounds, "
          f"tokenizers {__import__('tokenizers').__version__}\n")
    print("| tokenizer | texts/s | ours/theirs (per text) |")
    print("| --- | ---: | ---: |")
    for name, seconds in results.items():
        print(f"| {name} | {len(texts) / seconds:,.0f} | {reference / seconds:.2f} |")
    print(f"\ntexts where HF tokenizers' tokens differ from ours (and Google's): {disagree}")


if __name__ == "__main__":
    main()
