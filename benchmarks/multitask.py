"""Multi-task against single-task training on three Chinese tasks from m3e-small: topic, sentiment, entities.

  make bench-multitask     (after make chinese-model; ~1.5 hours on 2 cores with the defaults)

Data, read in place from ../shared/data/chinese_nlp_corpus (or $BERT_SHARED_DATA), subsampled with a fixed
seed and written under output/bench-multitask/data/ (train.* and dev.* per task; dev is the held-out test split):
  topic      online_shopping_10_cats.csv: the product category (10 classes) of a review, --per_class_train
             and --per_class_test reviews per category (the smallest, 热水器, has 575)
  sentiment  ChnSentiCorp_htl_all.csv: positive / negative hotel reviews, --train and --test of them
  entities   dh_msra.txt (MSRA NER, char<TAB>BIO): every 10th sentence is a test candidate, the others train;
             the first --train and --test of each (PER / LOC / ORG)
Runs (same length, batch, learning rate and epochs): run_classifier.py on topic and on sentiment, run_ner.py on
entities, and run_multitask.py on all three (an epoch there is all three tasks' examples, so it makes as many
updates as the three single runs together; batches drawn by size, --sampling_temperature 1). Each model is
exported; the table gives accuracy / entity F1 on the held-out splits, training time (wall and CPU) and the
exported SavedModel sizes (saved_model.pb + variables/).
"""
import argparse
import csv
import json
import os
import random
import re
import sys

from bench_common import REPO, SHARED_DATA, Runner, default_python, fresh_dir, minutes

sys.path.insert(0, REPO)
CORPUS = os.path.join(SHARED_DATA, "chinese_nlp_corpus")
M3E = os.path.join(REPO, "models", "m3e-small")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default=M3E)
    parser.add_argument("--per_class_train", type=int, default=300)
    parser.add_argument("--per_class_test", type=int, default=100)
    parser.add_argument("--train", type=int, default=3000, help="sentiment and entities: training examples")
    parser.add_argument("--test", type=int, default=1000, help="sentiment and entities: test examples")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--num_train_epochs", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--entities_loss_weight", type=float, default=1.0,
                        help="run_multitask.py's loss_weight of the entities task (2 measured: see the README)")
    parser.add_argument("--output_root", default=os.path.join(REPO, "output", "bench-multitask"))
    parser.add_argument("--python", default=default_python())
    return parser.parse_args()


def clean(text):
    return " ".join(text.replace("\ufeff", "").split())


def write_tsv(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as writer:
        writer.write("label\ttext_a\n" + "".join(f"{label}\t{text}\n" for label, text in rows))


def write_data(args, folder):
    """The three tasks' train and dev (held-out test) files; returns {task: (folder, train size, test size)}."""
    rng = random.Random(args.seed)
    with open(os.path.join(CORPUS, "online_shopping_10_cats.csv"), encoding="utf-8-sig") as reader:
        rows = [(r["cat"], clean(r["review"])) for r in csv.DictReader(reader) if clean(r["review"])]
    by_class = {}
    for label, text in rows:
        by_class.setdefault(label, []).append(text)
    train, test = [], []
    for label in sorted(by_class):
        texts = by_class[label]
        rng.shuffle(texts)
        train += [(label, t) for t in texts[:args.per_class_train]]
        test += [(label, t) for t in texts[args.per_class_train:args.per_class_train + args.per_class_test]]
    rng.shuffle(train)
    write_tsv(os.path.join(folder, "topic", "train.tsv"), train)
    write_tsv(os.path.join(folder, "topic", "dev.tsv"), test)
    sizes = {"topic": (len(train), len(test))}

    with open(os.path.join(CORPUS, "ChnSentiCorp_htl_all.csv"), encoding="utf-8-sig") as reader:
        rows = [("positive" if r["label"] == "1" else "negative", clean(r["review"])) for r in csv.DictReader(reader)
                if clean(r["review"])]
    rng.shuffle(rows)
    write_tsv(os.path.join(folder, "sentiment", "train.tsv"), rows[:args.train])
    write_tsv(os.path.join(folder, "sentiment", "dev.tsv"), rows[args.train:args.train + args.test])
    sizes["sentiment"] = (len(rows[:args.train]), len(rows[args.train:args.train + args.test]))

    from bert import ner
    sentences = ner.read_char_bio(os.path.join(CORPUS, "dh_msra.txt"))
    parts = {"train": [s for i, s in enumerate(sentences) if i % 10 != 9][:args.train],
             "dev": [s for i, s in enumerate(sentences) if i % 10 == 9][:args.test]}
    os.makedirs(os.path.join(folder, "entities"), exist_ok=True)
    for part, chosen in parts.items():
        lines = []
        for sentence in chosen:
            lines += [f"{word}\t{tag}" for word, tag in zip(sentence.words, sentence.tags)] + [""]
        with open(os.path.join(folder, "entities", f"{part}.txt"), "w", encoding="utf-8") as writer:
            writer.write("\n".join(lines))
    sizes["entities"] = (len(parts["train"]), len(parts["dev"]))
    return sizes


def folder_size(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def main():
    args = parse_args()
    if not os.path.exists(os.path.join(args.model_dir, "bert_config.json")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make chinese-model` first")
    for name in ("online_shopping_10_cats.csv", "ChnSentiCorp_htl_all.csv", "dh_msra.txt"):
        if not os.path.exists(os.path.join(CORPUS, name)):
            sys.exit(f"{os.path.join(CORPUS, name)} is absent: the data are read from ../shared/data")
    data = os.path.join(args.output_root, "data")
    sizes = write_data(args, data)
    model = args.model_dir
    common = [f"--vocab_file={model}/vocab.txt", f"--bert_config_file={model}/bert_config.json",
              "--do_lower_case=false", f"--init_checkpoint={model}", f"--max_seq_length={args.max_seq_length}",
              f"--train_batch_size={args.train_batch_size}", f"--learning_rate={args.learning_rate:g}",
              f"--num_train_epochs={args.num_train_epochs:g}", f"--seed={args.seed}", "--predict_batch_size=64",
              "--save_checkpoints_steps=1000000", f"--cache_dir={os.path.join(args.output_root, 'cache')}"]
    runner = Runner(args.python, re.compile(r"step \d+/\d+|training|rror|Traceback|mean"),
                    done="[{name}] {minutes}")
    runs = {
        "topic": ("run_classifier.py", ["--task_name=tsv", f"--data_dir={data}/topic"]),
        "sentiment": ("run_classifier.py", ["--task_name=tsv", f"--data_dir={data}/sentiment"]),
        "entities": ("run_ner.py", [f"--data_dir={data}/entities", "--data_format=char_bio"]),
        "multitask": ("run_multitask.py", [f"--tasks=topic:tsv:{data}/topic,sentiment:tsv:{data}/sentiment,"
                                           f"entities:char_bio:{data}/entities"]),
    }
    if args.entities_loss_weight != 1:
        options = os.path.join(args.output_root, "task_options.json")
        with open(options, "w", encoding="utf-8") as writer:
            json.dump({"entities": {"loss_weight": args.entities_loss_weight}}, writer)
        runs["multitask"][1].append(f"--task_options={options}")
    results = {}
    for name, (script, flags) in runs.items():
        out = fresh_dir(os.path.join(args.output_root, name))
        record = runner.run(name, os.path.join(REPO, script), common + flags + [
            "--do_train", "--do_eval", f"--output_dir={out}"], os.path.join(out, "run.log"))
        runner.run(name + " export", os.path.join(REPO, "export_savedmodel.py"),
                   [f"--model_dir={out}", f"--export_dir={out}/export"], os.path.join(out, "export.log"))
        with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as reader:
            report = json.load(reader)
        results[name] = dict(report=report, wall=record["wall"], cpu=record["cpu"],
                             export_bytes=folder_size(os.path.join(out, "export")))
        for file_name in os.listdir(out):
            if file_name.startswith("model.ckpt-"):
                os.remove(os.path.join(out, file_name))
    single = {"topic": results["topic"]["report"]["accuracy"], "sentiment": results["sentiment"]["report"]["accuracy"],
              "entities": results["entities"]["report"]["f1"]}
    joint = results["multitask"]["report"]
    lines = ["| task | train / test | single-task | multi-task | multi − single (points) | metric |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for task, metric in (("topic", "accuracy"), ("sentiment", "accuracy"), ("entities", "entity F1")):
        lines.append(f"| {task} | {sizes[task][0]} / {sizes[task][1]} | {100 * single[task]:.2f} | "
                     f"{100 * joint[task]:.2f} | {100 * (joint[task] - single[task]):+.2f} | {metric} |")
    cost = ["| run | training + evaluation wall (CPU) | exported SavedModel |", "| --- | ---: | ---: |"]
    for name in runs:
        cost.append(f"| {name} | {minutes(results[name]['wall'])} ({minutes(results[name]['cpu'])}) | "
                    f"{results[name]['export_bytes'] / 2**20:.1f} MiB |")
    singles = sum(results[t]["export_bytes"] for t in ("topic", "sentiment", "entities"))
    text = (f"### Multi-task vs single-task, m3e-small, length {args.max_seq_length}, {args.num_train_epochs:g} "
            f"epochs, batch {args.train_batch_size}, learning rate {args.learning_rate:g}, entities loss weight "
            f"{args.entities_loss_weight:g} in the multi-task run\n\n" + "\n".join(lines)
            + "\n\n" + "\n".join(cost) + f"\n\nThe three single-task exports together: {singles / 2**20:.1f} MiB; "
            f"the multi-task export: {results['multitask']['export_bytes'] / 2**20:.1f} MiB. "
            f"{os.cpu_count()} CPU cores, shared machine.\n\nCommands:\n\n"
            + "\n".join(f"    {r['command']}" for r in runner.runs) + "\n")
    with open(os.path.join(args.output_root, "report.md"), "w", encoding="utf-8") as writer:
        writer.write(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
