"""Chinese few-shot classification on FewCLUE csldcp (paper abstracts -> 67 disciplines) with run_fewshot.py:
a small Chinese BERT with the real Chinese vocab, meta-trained vs left as it is vs per-episode fine-tuning.

  make bench-fewshot-csldcp       (project .venv; reads ../shared/data/fewclue/csldcp and
                                   ../shared/data/bert_chinese/vocab.txt, or under $BERT_SHARED_DATA)

The encoder is --encoder_dir, by default output/chinese_bert_small/: the 4-layer, 256-wide Chinese
BERT that `make chinese-encoder` pretrains from scratch (benchmarks/pretraining.py chinese). Without a
complete one there (or with --encoder_dir=none) the driver falls back to a random init of the same
shape: it writes OUT/bert_config.json (4 layers, hidden 256, 4 heads, intermediate 1024, vocab 21128 =
Google's Chinese vocab) and runs without --init_checkpoint, and the untrained row is "random init"
instead of "frozen encoder".

Data: every labelled csldcp example, pooled: train_few_all.json + dev_few_all.json +
test_public.json (2036 + 2068 + 1784 = 5888 abstracts, disjoint; train_<k>/dev_<k>.json are subsets
of the *_few_all files and test.json has no labels, so neither is added), written as text<TAB>label
lines to OUT/csldcp.tsv. Classes with fewer than (largest K evaluated + --eval_q_query) examples
would be dropped here; with the default settings that is 20 and the smallest class has 27, so all
67 are kept. run_fewshot.py splits the 67 classes itself (--test_class_ratio=0.3,
--val_class_ratio=0.15, --split_seed=12345: 20 test / 10 validation / 37 meta-training classes,
written to OUT/meta/class_split.json).

Runs (run_fewshot.py subprocesses with the project venv's python, each in its own folder under OUT,
emptied first; TFRecord features cached in OUT/cache):
  meta      --do_train --do_eval: episodic meta-training from the encoder, best checkpoint by
            validation accuracy (first evaluation setting), then the meta-trained and untrained rows.
  baseline  --do_eval --baseline=finetune: the encoder plus a new classifier fine-tuned on each
            episode's support set (--baseline_episodes per setting).
OUT defaults to output/bench-fewshot-csldcp.

Defaults and why: evaluation 5w1s,5w5s,10w1s,10w5s with 15 queries per class (K+Q <= 20 fits the
smallest class, 27; 10-way fits the 20 test classes); --max_seq_length=128 (abstracts have a median of
184 tokens: 128 keeps the opening sentences, which name the subject, at a quarter of the attention cost
of 256); learning rate 3e-4 (a small encoder, briefly pretrained or not at all, unlike the English run);
1000 training episodes with validation every 250 and 10 fine-tuning episodes per setting, to fit in
about half an hour on 2 cores.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fewshot_common as common  # noqa: E402

DATA_DIR = os.path.join(common.SHARED_DATA, "fewclue", "csldcp")
VOCAB = os.path.join(common.SHARED_DATA, "bert_chinese", "vocab.txt")
DEFAULT_OUTPUT = os.path.join(common.REPO, "output", "bench-fewshot-csldcp")
CHINESE_ENCODER = os.path.join(common.REPO, "output", "chinese_bert_small")
LABELLED_FILES = ("train_few_all.json", "dev_few_all.json", "test_public.json")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--vocab_file", default=VOCAB)
    parser.add_argument("--encoder_dir", default=CHINESE_ENCODER,
                        help="pretrained Chinese encoder (make chinese-encoder); 'none' for a random init")
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT)
    parser.add_argument("--untrained_only", action="store_true", help="only the untrained encoder's row (--do_eval)")
    parser.add_argument("--test_class_ratio", type=float, default=0.3)
    parser.add_argument("--val_class_ratio", type=float, default=0.15)
    parser.add_argument("--split_seed", type=int, default=12345)
    parser.add_argument("--baseline_learning_rate", type=float, default=3e-4)
    common.add_run_flags(parser, max_seq_length=128, k_shot=3, q_query=5, train_episodes=1000, learning_rate=3e-4,
                         eval_every_steps=250, eval_settings="5w1s,5w5s,10w1s,10w5s")
    return parser.parse_args()


def pretrained_encoder(path):
    """path when it holds a complete pretrained encoder (pretraining_recipe.json says so), else None."""
    try:
        with open(os.path.join(path, "pretraining_recipe.json"), encoding="utf-8") as reader:
            return path if json.load(reader).get("complete") else None
    except (OSError, ValueError):
        return None


def read_labelled(data_dir):
    """[(content, label)] from the labelled csldcp files, in file order."""
    examples = []
    for name in LABELLED_FILES:
        with open(os.path.join(data_dir, name), encoding="utf-8") as reader:
            for number, line in enumerate(reader, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                text, label = " ".join(str(record["content"]).split()), str(record["label"]).strip()
                if not text or not label:
                    sys.exit(f"{data_dir}/{name}:{number}: empty content or label")
                examples.append((text, label))
    return examples


def write_data(examples, needed, path):
    """Keeps classes with at least `needed` examples, writes text<TAB>label lines; returns (kept, counts, dropped)."""
    counts = {}
    for _, label in examples:
        counts[label] = counts.get(label, 0) + 1
    dropped = {label: n for label, n in counts.items() if n < needed}
    kept = [(text, label) for text, label in examples if label not in dropped]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as writer:
        writer.write("".join(f"{text}\t{label}\n" for text, label in kept))
    os.replace(tmp, path)
    return kept, counts, dropped


def main():
    args = parse_args()
    for name in LABELLED_FILES:
        common.require_file(os.path.join(args.data_dir, name), "this benchmark reads FewCLUE csldcp from "
                            "../shared/data/fewclue/csldcp (or $BERT_SHARED_DATA/fewclue/csldcp)")
    common.require_file(args.vocab_file, "the Chinese BERT vocab (../shared/data/bert_chinese/vocab.txt) is missing")
    settings = args.eval_settings.split(",")
    ks = [int(s.lower().split("w")[1].rstrip("s")) for s in settings + args.baseline_settings.split(",") if s]
    needed = max(ks) + args.eval_q_query
    os.makedirs(args.output_dir, exist_ok=True)

    data_file = os.path.join(args.output_dir, "csldcp.tsv")
    examples, counts, dropped = write_data(read_labelled(args.data_dir), needed, data_file)
    sizes = sorted(counts.values())
    print(f"csldcp: {sum(sizes)} labelled abstracts from {' + '.join(LABELLED_FILES)}, {len(counts)} classes, "
          f"{sizes[0]}-{sizes[-1]} examples per class (median {sizes[len(sizes) // 2]}); K+Q needs {needed}: "
          + (f"dropped {len(dropped)} classes {dropped}" if dropped else "every class has enough, none dropped")
          + f"; {len(examples)} examples written to {data_file}")
    print(common.describe_lengths(common.token_lengths([t for t, _ in examples], args.vocab_file, True),
                                  args.max_seq_length), flush=True)
    encoder = pretrained_encoder(args.encoder_dir)
    if encoder:
        config_file = os.path.join(encoder, "bert_config.json")
        init = [f"--init_checkpoint={encoder}"]
        print(f"encoder: {encoder} (pretrained by benchmarks/pretraining.py chinese)")
    else:
        config_file, init = os.path.join(args.output_dir, "bert_config.json"), []
        with open(config_file, "w", encoding="utf-8") as writer:
            json.dump(common.SMALL_CHINESE_CONFIG, writer, indent=2)
        print(f"random-init encoder (no complete pretrained one at {args.encoder_dir}): {config_file} = "
              f"{json.dumps(common.SMALL_CHINESE_CONFIG)}")
    untrained_row = "frozen encoder" if encoder else "random init"

    shared = [
        f"--data_file={data_file}", f"--test_class_ratio={args.test_class_ratio:g}",
        f"--val_class_ratio={args.val_class_ratio:g}", f"--split_seed={args.split_seed}", "--do_lower_case=true",
        f"--vocab_file={args.vocab_file}", f"--bert_config_file={config_file}",
        f"--max_seq_length={args.max_seq_length}", f"--pooling={args.pooling}", f"--distance={args.distance}",
        f"--eval_q_query={args.eval_q_query}", f"--eval_episodes={args.eval_episodes}", f"--seed={args.seed}",
        f"--cache_dir={os.path.join(args.output_dir, 'cache')}",
    ] + init

    def title(run_dir):
        with open(os.path.join(run_dir, "class_split.json"), encoding="utf-8") as reader:
            split = json.load(reader)
        return (f"\n## FewCLUE csldcp few-shot, {len(split['test_classes'])} test disciplines "
                f"({len(split['train_classes'])} meta-training, {len(split['val_classes'])} validation; split seed "
                f"{args.split_seed}), {args.eval_q_query} queries per class, accuracy % (mean ± 95% interval), "
                f"4-layer 256-wide BERT {'pretrained from scratch' if encoder else 'from a random init'}, "
                f"distance {args.distance}, pooling {args.pooling}, "
                f"max_seq_length {args.max_seq_length}\n")

    common.run_benchmark(args, shared, untrained_only=args.untrained_only, untrained=("untrained", untrained_row),
                         untrained_label=untrained_row, title=title,
                         baseline_flags=[f"--baseline_learning_rate={args.baseline_learning_rate:g}"],
                         compare_finetune=True)


if __name__ == "__main__":
    main()
