"""Pretraining benchmarks: data-creation throughput, continuing all-MiniLM-L6-v2, a small Chinese BERT.

  make bench-pretraining-data      instances/s of create_pretraining_data.py, 1 and 2 workers (~5 min)
  make bench-pretraining-minilm    held-out masked-LM loss/accuracy of all-MiniLM-L6-v2 before and
                                   after continued pretraining on BBC news (~35 min on 2 cores)
  make chinese-encoder             a 4-layer, 256-wide Chinese BERT pretrained from scratch on People's
                                   Daily + FewCLUE unlabeled text, with its held-out accuracy curve
                                   (~45 min on 2 cores); writes output/chinese_bert_small/

Every step runs a project script (create_pretraining_data.py, run_pretraining.py) in a subprocess with
the project venv's python, from the repository root, and the exact command lines are printed with the
tables. Each step's full output is in a .log file beside its results. Text is read in place from
../shared/data (or $BERT_SHARED_DATA); the derived text files (held-out splits, FewCLUE sentences as
text) go under output/. Times are wall-clock seconds of the whole subprocess (Python and TensorFlow
start-up included) and the CPU seconds it used (user + system, its worker processes included): on a
machine shared with other jobs the CPU seconds say more about the work than the wall time does.

Held-out masked-LM numbers come from run_pretraining.py --do_eval. A checkpoint part-way through a
run is evaluated by pointing an evaluation folder's `checkpoint` file at it, so one training run
with a fixed learning-rate schedule gives the whole curve.
"""
import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time

from bench_common import REPO, SHARED_DATA, SMALL_CHINESE_CONFIG, Runner, default_python
import bench_common

sys.path.insert(0, REPO)
from bert.pretraining_data import read_documents  # noqa: E402  (no TensorFlow import)

PRETRAIN_TEXT = os.path.join(SHARED_DATA, "pretrain_text")
MINILM = os.path.join("models", "all-MiniLM-L6-v2")  # relative to REPO, where the scripts run
BENCH_OUT = os.path.join("output", "bench-pretraining")
CHINESE_OUT = os.path.join("output", "chinese_bert_small")

# Lines of the scripts' output worth echoing while they run.
PROGRESS = re.compile(r"step \d+/\d+|wrote \d+ instances|tokenized \d+|read \d+ documents|variables loaded|"
                      r"error|Error|Traceback|\"masked_lm_accuracy\"")


# --- running the scripts ----------------------------------------------------------------------------

def require(path, what):
    if not os.path.exists(os.path.join(REPO, path)):
        sys.exit(f"{path} is absent: {what}")


def make_runner(python):
    """A Runner of the project scripts with `python` (relative to REPO when it lies inside it): prints each
    command and its wall and CPU seconds; its records (name, command, wall, cpu to 0.1 s) go into the results."""
    python = os.path.relpath(python, REPO) if python.startswith(REPO + os.sep) else python
    return Runner(python, PROGRESS, done="  ({wall:.1f} s wall, {cpu:.1f} s CPU)", round_to=1)


def machine_note():
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPU cores, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
            f"(1 / 5 / 15 min) at {time.strftime('%Y-%m-%d %H:%M')}")


def fresh_dir(path):
    """bench_common.fresh_dir for a path relative to REPO; returns it unchanged."""
    bench_common.fresh_dir(os.path.join(REPO, path))
    return path


def write_results(folder, name, markdown, data):
    full = os.path.join(REPO, folder)
    os.makedirs(full, exist_ok=True)
    with open(os.path.join(full, name + ".md"), "w", encoding="utf-8") as writer:
        writer.write(markdown + "\n")
    with open(os.path.join(full, name + ".json"), "w", encoding="utf-8") as writer:
        json.dump(data, writer, indent=2, ensure_ascii=False)
        writer.write("\n")
    print("\n" + markdown)
    print(f"\n(written to {os.path.join(folder, name)}.md and .json)")


# --- text -------------------------------------------------------------------------------------------

def write_documents(path, documents):
    full = os.path.join(REPO, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as writer:
        writer.write("\n\n".join("\n".join(document) for document in documents) + "\n")
    return path


def hold_out(documents, every):
    """(training documents, held-out documents): every `every`-th document is held out. The BBC file is
    ordered by category (business ... tech) and People's Daily by date, so a strided hold-out covers
    them all where "the last 10%" would be one category."""
    held = [d for i, d in enumerate(documents) if i % every == every - 1]
    kept = [d for i, d in enumerate(documents) if i % every != every - 1]
    return kept, held


def read_flags_file(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as reader:
        return json.load(reader)


# --- the masked-LM evaluations ------------------------------------------------------------------------

def point_at_checkpoint(eval_dir, checkpoint_prefix):
    """Makes eval_dir's latest checkpoint `checkpoint_prefix` (an absolute path elsewhere), so that
    run_pretraining.py --do_eval --output_dir=eval_dir evaluates that very checkpoint."""
    from bert import checkpoint  # imports TensorFlow: only when a checkpoint is evaluated
    fresh_dir(eval_dir)
    checkpoint.write_checkpoint_state(os.path.join(REPO, eval_dir), checkpoint_prefix)


def evaluate_checkpoints(runner, train_dir, work, held_data, config, batch_size, eval_batches, skip_step_zero=False):
    """evaluate() on every model.ckpt-N in train_dir, step by step, each from work/eval-step-N."""
    rows = []
    for step, prefix in sorted(checkpoints_in(train_dir).items()):
        if skip_step_zero and step == 0:
            continue
        eval_dir = os.path.join(work, f"eval-step-{step}")
        point_at_checkpoint(eval_dir, prefix)
        rows.append(evaluate(runner, f"evaluate step {step}", eval_dir, held_data, config, batch_size, eval_batches))
    return rows


def checkpoints_in(folder):
    """{step: absolute checkpoint prefix} of the model.ckpt-N files in folder."""
    found = {}
    full = os.path.join(REPO, folder)
    for name in os.listdir(full) if os.path.isdir(full) else ():
        match = re.fullmatch(r"model\.ckpt-(\d+)\.index", name)
        if match:
            found[int(match.group(1))] = os.path.join(full, name[:-len(".index")])
    return found


def evaluate(runner, name, eval_dir, data_dir, bert_config, batch_size, max_batches, init_checkpoint=None):
    flags = ["--do_eval", f"--input_file={data_dir}", f"--bert_config_file={bert_config}",
             f"--eval_batch_size={batch_size}", f"--max_eval_steps={max_batches}", f"--output_dir={eval_dir}"]
    if init_checkpoint:
        flags.append(f"--init_checkpoint={init_checkpoint}")
    record = runner.run(name, "run_pretraining.py", flags, os.path.join(eval_dir, "run.log"))
    result = read_flags_file(os.path.join(eval_dir, "eval_results.json"))
    result.update(wall=record["wall"], cpu=record["cpu"])
    return result


def unigram_baseline(train_dir, heldout_dir, max_seq_length, max_predictions, eval_records):
    """What a head that ignores the context reaches: cross-entropy of the held-out masked tokens under
    the training data's masked-token frequencies (add-one smoothed over the tokens seen), and the
    accuracy of always predicting the most frequent one. Over the first eval_records held-out records
    (the ones run_pretraining.py evaluates)."""
    import collections
    import tensorflow as tf
    spec = {"masked_lm_ids": tf.io.FixedLenFeature([max_predictions], tf.int64),
            "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32)}

    def labels(folder, limit=None):
        meta = read_flags_file(os.path.join(folder, "pretrain_meta.json"))
        paths = [os.path.join(REPO, folder, name) for name in meta["shards"]]
        dataset = tf.data.TFRecordDataset(paths)
        if limit:
            dataset = dataset.take(limit)
        counts = collections.Counter()
        for batch in dataset.map(lambda r: tf.io.parse_single_example(r, spec)).batch(4096).as_numpy_iterator():
            ids = batch["masked_lm_ids"][batch["masked_lm_weights"] > 0]
            counts.update(ids.tolist())
        return counts

    train, held = labels(train_dir), labels(heldout_dir, eval_records)
    total_train, total_held = sum(train.values()), sum(held.values())
    vocab = len(set(train) | set(held))
    loss = -sum(n * math.log((train.get(i, 0) + 1) / (total_train + vocab)) for i, n in held.items()) / total_held
    top = train.most_common(1)[0][0]
    return {"masked_lm_loss": loss, "masked_lm_accuracy": held.get(top, 0) / total_held,
            "heldout_masked_tokens": total_held}


def curve_table(rows, batch_size, baseline):
    lines = ["| step | examples seen | held-out masked-LM loss | held-out masked-LM accuracy | eval wall s |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        extra = f" {row['note']}" if row.get("note") else ""
        lines.append(f"| {row['global_step']}{extra} | {row['global_step'] * batch_size} | {row['masked_lm_loss']:.4f} "
                     f"| {row['masked_lm_accuracy']:.4f} | {row['wall']:.0f} |")
    lines.append(f"| unigram baseline (no context) | | {baseline['masked_lm_loss']:.4f} | "
                 f"{baseline['masked_lm_accuracy']:.4f} | |")
    return "\n".join(lines)


# --- 1. create_pretraining_data.py throughput -------------------------------------------------------

def shard_digest(folder):
    meta = read_flags_file(os.path.join(folder, "pretrain_meta.json"))
    digest = hashlib.sha256()
    for name in meta["shards"]:
        with open(os.path.join(REPO, folder, name), "rb") as reader:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest(), meta


def data_throughput(args, runner):
    text = os.path.join(PRETRAIN_TEXT, "en_bbcnews_pretrain.txt")
    if not os.path.exists(text):
        sys.exit(f"{text} is absent: this benchmark reads ../shared/data/pretrain_text (or $BERT_SHARED_DATA)")
    require(os.path.join(MINILM, "vocab.txt"), "run `make model` first (the uncased vocab of all-MiniLM-L6-v2)")
    folder = os.path.join(BENCH_OUT, "create_data")
    rows = []
    workers = [int(w) for w in args.workers.split(",")]
    print(f"machine: {machine_note()}")
    for repeat in range(args.repeats):
        for count in workers:
            out = fresh_dir(os.path.join(folder, f"workers-{count}-run-{repeat + 1}"))
            flags = [f"--input_file={text}", f"--output_dir={out}", f"--vocab_file={MINILM}/vocab.txt",
                     "--do_lower_case=true", "--max_seq_length=128", "--max_predictions_per_seq=20",
                     f"--dupe_factor={args.dupe_factor}", f"--random_seed={args.seed}", f"--num_workers={count}"]
            record = runner.run(f"{count} worker(s), run {repeat + 1}", "create_pretraining_data.py", flags,
                                os.path.join(out, "run.log"))
            digest, meta = shard_digest(out)
            summary = meta["summary"]
            rows.append(dict(workers=count, run=repeat + 1, digest=digest, wall=record["wall"], cpu=record["cpu"],
                             **summary))
            for name in meta["shards"]:  # the bytes are hashed; the shards are large
                os.remove(os.path.join(REPO, out, name))

    identical = len({row["digest"] for row in rows}) == 1
    by_workers = {count: [row for row in rows if row["workers"] == count] for count in workers}
    median = {count: sorted(r["instances_per_second"] for r in group)[len(group) // 2]
              for count, group in by_workers.items()}
    lines = [f"create_pretraining_data.py on en_bbcnews_pretrain.txt (2,225 documents, 5.0 MB), uncased vocab of "
             f"all-MiniLM-L6-v2, length 128, 20 predictions, dupe_factor {args.dupe_factor}, MLM + NSP; "
             f"{machine_note()}", "",
             "| workers | run | instances | instances/s (script's timer) | instances/s (process wall) | process wall s "
             "| CPU s | output sha256 |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row['workers']} | {row['run']} | {row['instances']} | {row['instances_per_second']:.0f} "
                     f"| {row['instances'] / row['wall']:.0f} | {row['wall']:.1f} | {row['cpu']:.1f} "
                     f"| {row['digest'][:16]} |")
    lines.append("")
    if len(workers) > 1:
        base = median[workers[0]]
        lines.append("ratio of instances/s (script's timer, median of runs): " + ", ".join(
            f"{count} / {workers[0]} workers = {median[count] / base:.2f}x" for count in workers[1:]))
    lines.append(f"output byte-identical across worker counts and runs: {'yes' if identical else 'NO'} "
                 f"(sha256 of the shard bytes)")
    lines.append("\nThe script's timer starts after the tokenizer is loaded (reading, tokenizing, making "
                 "instances, writing); process wall adds Python and TensorFlow start-up.")
    lines += ["", runner.commands_markdown()]
    write_results(folder, "results", "\n".join(lines), dict(rows=rows, identical=identical, median=median))
    if not identical:
        sys.exit("the outputs differ between worker counts")


# --- 2. continuing all-MiniLM-L6-v2 on BBC news -----------------------------------------------------

def minilm(args, runner):
    text = os.path.join(PRETRAIN_TEXT, "en_bbcnews_pretrain.txt")
    if not os.path.exists(text):
        sys.exit(f"{text} is absent: this benchmark reads ../shared/data/pretrain_text (or $BERT_SHARED_DATA)")
    require(os.path.join(MINILM, "bert_config.json"), "run `make model` first")
    folder = os.path.join(BENCH_OUT, "minilm")
    print(f"machine: {machine_note()}")
    train_docs, held_docs = hold_out(read_documents([text]), args.hold_out_every)
    train_text = write_documents(os.path.join(folder, "text", "train.txt"), train_docs)
    held_text = write_documents(os.path.join(folder, "text", "heldout.txt"), held_docs)
    print(f"{len(train_docs)} training documents, {len(held_docs)} held out (every {args.hold_out_every}th)")

    common = [f"--vocab_file={MINILM}/vocab.txt", "--do_lower_case=true", "--max_seq_length=128",
              "--max_predictions_per_seq=20"] + (["--no_nsp"] if not args.nsp else [])
    train_data, held_data = os.path.join(folder, "data_train"), os.path.join(folder, "data_heldout")
    for name, source, out, dupe, seed in (("training data", train_text, train_data, args.dupe_factor, 12345),
                                          ("held-out data", held_text, held_data, 1, 54321)):
        fresh_dir(out)
        runner.run(name, "create_pretraining_data.py",
                   [f"--input_file={source}", f"--output_dir={out}", f"--dupe_factor={dupe}",
                    f"--random_seed={seed}"] + common, os.path.join(out, "run.log"))
    held_instances = read_flags_file(os.path.join(held_data, "pretrain_meta.json"))["summary"]["instances"]
    train_instances = read_flags_file(os.path.join(train_data, "pretrain_meta.json"))["summary"]["instances"]
    eval_batches = -(-held_instances // args.eval_batch_size)  # all of the held-out data
    config = f"{MINILM}/bert_config.json"

    rows = []
    before = evaluate(runner, "evaluate before (step 0)", fresh_dir(os.path.join(folder, "eval-step-0")), held_data,
                      config, args.eval_batch_size, eval_batches, init_checkpoint=MINILM)
    before["note"] = "(all-MiniLM-L6-v2, fresh random masked-LM head)"
    rows.append(before)

    train_dir = fresh_dir(os.path.join(folder, "train"))
    steps, every = args.steps, args.eval_every or args.steps
    runner.run(f"continue pretraining, {steps} steps", "run_pretraining.py",
               ["--do_train", f"--input_file={train_data}", f"--bert_config_file={config}",
                f"--vocab_file={MINILM}/vocab.txt", "--do_lower_case=true", f"--init_checkpoint={MINILM}",
                f"--num_train_steps={steps}", f"--num_warmup_steps={int(steps * 0.1)}",
                f"--train_batch_size={args.batch_size}", f"--learning_rate={args.learning_rate:g}",
                f"--save_checkpoints_steps={every}", f"--keep_checkpoint_max={steps // every + 1}",
                f"--output_dir={train_dir}"], os.path.join(train_dir, "run.log"))
    # Not the step-0 checkpoint training saves: the same encoder, another random head draw.
    rows += evaluate_checkpoints(runner, train_dir, folder, held_data, config, args.eval_batch_size, eval_batches,
                                 skip_step_zero=True)
    baseline = unigram_baseline(train_data, held_data, 128, 20, eval_batches * args.eval_batch_size)

    train_wall = next(r["wall"] for r in runner.runs if r["name"].startswith("continue"))
    lines = [f"all-MiniLM-L6-v2 continued on BBC news ({len(train_docs)} documents; {len(held_docs)} held out: "
             f"every {args.hold_out_every}th document), {'MLM + NSP' if args.nsp else 'masked LM only (--no_nsp)'}, "
             f"length 128, 20 predictions, whole-word masking; {train_instances} training instances "
             f"(dupe_factor {args.dupe_factor}), held-out: all {held_instances} instances (dupe_factor 1, own seed). "
             f"{steps} steps x batch {args.batch_size}, learning rate {args.learning_rate:g} (10% warm-up, linear "
             f"decay), training {train_wall / 60:.1f} min wall; {machine_note()}", "",
             curve_table(rows, args.batch_size, baseline), "",
             "Step 0 is the converted checkpoint with the masked-LM head run_pretraining.py creates fresh (the "
             "transform dense + LayerNorm random, output bias zero, the output projection tied to the word "
             "embeddings): all-MiniLM-L6-v2 ships no head, so 'before' measures an untrained head.", "",
             runner.commands_markdown()]
    write_results(folder, "results", "\n".join(lines), dict(rows=rows, baseline=baseline, runs=runner.runs))


# --- 3. a small Chinese BERT from scratch -----------------------------------------------------------

FEWCLUE_UNLABELED = ("fewclue_tnews_unlabeled.json", "fewclue_eprstmt_unlabeled.json", "fewclue_bustm_unlabeled.json")
TEXT_FIELDS = ("sentence", "sentence1", "sentence2", "content")


def fewclue_labelled_texts():
    """Every text of FewCLUE's labelled train/dev/test files, to keep them out of pretraining."""
    texts = set()
    root = os.path.join(SHARED_DATA, "fewclue")
    for task in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        folder = os.path.join(root, task)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            if name.endswith(".json"):
                with open(os.path.join(folder, name), encoding="utf-8") as reader:
                    for line in reader:
                        if line.strip():
                            row = json.loads(line)
                            texts.update(row[f].strip() for f in TEXT_FIELDS if isinstance(row.get(f), str))
    return texts


def fewclue_unlabeled_sentences(exclude):
    """The FewCLUE unlabeled sentences (tnews titles, eprstmt reviews, bustm pairs' sentences), in file
    order, without the ones that appear in any labelled FewCLUE file; (sentences, how many were dropped)."""
    sentences, seen, dropped = [], set(), 0
    for name in FEWCLUE_UNLABELED:
        with open(os.path.join(PRETRAIN_TEXT, name), encoding="utf-8") as reader:
            for line in reader:
                if not line.strip():
                    continue
                row = json.loads(line)
                for field in TEXT_FIELDS:
                    text = " ".join(str(row.get(field) or "").split())
                    if not text or text in seen:
                        continue
                    seen.add(text)
                    if text in exclude:
                        dropped += 1
                    else:
                        sentences.append(text)
    return sentences, dropped


def chinese_recipe(args):
    return {"config": SMALL_CHINESE_CONFIG, "steps": args.steps, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "warmup": int(args.steps * 0.1), "eval_every": args.eval_every,
            "max_seq_length": 128, "max_predictions_per_seq": 20, "dupe_factor": args.dupe_factor,
            "word_boundaries": args.word_boundaries, "fewclue": args.fewclue, "hold_out_every": args.hold_out_every,
            "nsp": True, "seed": 12345}


def chinese(args, runner):
    pd_text = os.path.join(PRETRAIN_TEXT, "zh_peoples_daily_199801_pretrain.txt")
    vocab = os.path.join(SHARED_DATA, "bert_chinese", "vocab.txt")
    for path in (pd_text, vocab):
        if not os.path.exists(path):
            sys.exit(f"{path} is absent: the Chinese encoder is built from ../shared/data (or $BERT_SHARED_DATA)")
    out = CHINESE_OUT
    full_out = os.path.join(REPO, out)
    recipe = chinese_recipe(args)
    recipe_path = os.path.join(full_out, "pretraining_recipe.json")
    if args.force:
        shutil.rmtree(full_out, ignore_errors=True)
    if os.path.exists(recipe_path):
        saved = read_flags_file(os.path.join(out, "pretraining_recipe.json"))
        if saved.get("recipe") != recipe:
            sys.exit(f"{out} holds a model of another recipe: remove it, or pass --force to rebuild it")
        if saved.get("complete") and checkpoints_in(out).get(args.steps):
            print(f"{out} is up to date (this recipe, step {args.steps} checkpoint present):\n")
            with open(os.path.join(full_out, "pretraining_curve.md"), encoding="utf-8") as reader:
                print(reader.read())
            return
        print(f"{out}: resuming this recipe's unfinished run")
    elif os.path.isdir(full_out) and os.listdir(full_out):
        sys.exit(f"{out} is not empty and has no pretraining_recipe.json: remove it, or pass --force")
    os.makedirs(full_out, exist_ok=True)
    with open(recipe_path, "w", encoding="utf-8") as writer:
        json.dump({"recipe": recipe, "complete": False}, writer, indent=2)
    work = os.path.join(BENCH_OUT, "chinese")
    print(f"machine: {machine_note()}")

    # Text: People's Daily paragraphs as documents; every hold_out_every-th one held out.
    train_docs, held_docs = hold_out(read_documents([pd_text]), args.hold_out_every)
    inputs = [write_documents(os.path.join(work, "text", "peoples_daily_train.txt"), train_docs)]
    held_inputs = [write_documents(os.path.join(work, "text", "peoples_daily_heldout.txt"), held_docs)]
    notes = [f"People's Daily 1998-01: {len(train_docs)} paragraphs for training, {len(held_docs)} held out"]
    if args.fewclue:
        sentences, dropped = fewclue_unlabeled_sentences(fewclue_labelled_texts())
        kept, held = hold_out([[s] for s in sentences], args.hold_out_every)
        inputs.append(write_documents(os.path.join(work, "text", "fewclue_unlabeled_train.txt"), kept))
        held_inputs.append(write_documents(os.path.join(work, "text", "fewclue_unlabeled_heldout.txt"), held))
        notes.append(f"FewCLUE unlabeled (tnews, eprstmt, bustm): {len(kept)} sentences for training, {len(held)} "
                     f"held out, each its own document; {dropped} that also appear in a labelled FewCLUE "
                     "train/dev/test file left out")
    print("\n".join(notes))

    common = [f"--vocab_file={vocab}", "--do_lower_case=true", "--max_seq_length=128", "--max_predictions_per_seq=20",
              f"--word_boundaries={args.word_boundaries}"]
    train_data, held_data = os.path.join(work, "data_train"), os.path.join(work, "data_heldout")
    for name, sources, data, dupe, seed in (("training data", inputs, train_data, args.dupe_factor, 12345),
                                            ("held-out data", held_inputs, held_data, 1, 54321)):
        fresh_dir(data)
        runner.run(name, "create_pretraining_data.py",
                   [f"--input_file={','.join(sources)}", f"--output_dir={data}", f"--dupe_factor={dupe}",
                    f"--random_seed={seed}"] + common, os.path.join(data, "run.log"))
    train_meta = read_flags_file(os.path.join(train_data, "pretrain_meta.json"))["summary"]
    held_instances = read_flags_file(os.path.join(held_data, "pretrain_meta.json"))["summary"]["instances"]
    eval_batches = min(args.max_eval_batches, -(-held_instances // args.eval_batch_size))

    config = os.path.join(work, "bert_config.json")
    with open(os.path.join(REPO, config), "w", encoding="utf-8") as writer:
        json.dump(SMALL_CHINESE_CONFIG, writer, indent=2, sort_keys=True)
        writer.write("\n")
    steps = args.steps
    # A run stopped part-way (Ctrl-C, a lost machine) continues from its last checkpoint when the
    # same command is given again: run_pretraining.py resumes from output_dir with the same data order.
    runner.run(f"pretrain from scratch, {steps} steps", "run_pretraining.py",
               ["--do_train", f"--input_file={train_data}", f"--bert_config_file={config}", f"--vocab_file={vocab}",
                "--do_lower_case=true", f"--num_train_steps={steps}", f"--num_warmup_steps={recipe['warmup']}",
                f"--train_batch_size={args.batch_size}", f"--learning_rate={args.learning_rate:g}",
                f"--save_checkpoints_steps={args.eval_every}", f"--keep_checkpoint_max={steps // args.eval_every + 1}",
                "--seed=12345", f"--output_dir={out}"], os.path.join(out, "pretraining.log"))
    for name, source in (("bert_config.json", config), ("vocab.txt", vocab)):  # run_pretraining copies them too
        if not os.path.exists(os.path.join(full_out, name)):
            shutil.copyfile(os.path.join(REPO, source), os.path.join(full_out, name))
    rows = evaluate_checkpoints(runner, out, work, held_data, config, args.eval_batch_size, eval_batches)
    baseline = unigram_baseline(train_data, held_data, 128, 20, eval_batches * args.eval_batch_size)

    train_wall = next(r["wall"] for r in runner.runs if r["name"].startswith("pretrain"))
    lines = [f"Chinese BERT from scratch: 4 layers, hidden 256, 4 heads, intermediate 1024, vocab 21,128 (Google's "
             f"Chinese vocab, do_lower_case), MLM + NSP, whole-word masking by {args.word_boundaries}, length 128, 20 "
             f"predictions; {train_meta['instances']} training instances (dupe_factor {args.dupe_factor}). {steps} steps "
             f"x batch {args.batch_size}, learning rate {args.learning_rate:g} (warm-up {recipe['warmup']} steps, "
             f"linear decay to 0 at step {steps}), training {train_wall / 60:.1f} min wall. Held-out: the first "
             f"{min(held_instances, eval_batches * args.eval_batch_size)} of {held_instances} instances. "
             f"{machine_note()}", "", "; ".join(notes) + ".", "",
             curve_table(rows, args.batch_size, baseline), "",
             f"The encoder: {out}/ (bert_config.json, vocab.txt, model_info.json, model.ckpt-{steps}); use it with "
             f"--bert_config_file={out}/bert_config.json --vocab_file={out}/vocab.txt --do_lower_case=true "
             f"--init_checkpoint={out}", "", runner.commands_markdown()]
    markdown = "\n".join(lines)
    with open(os.path.join(full_out, "pretraining_curve.md"), "w", encoding="utf-8") as writer:
        writer.write(markdown + "\n")
    write_results(work, "results", markdown, dict(rows=rows, baseline=baseline, runs=runner.runs, notes=notes))
    with open(recipe_path, "w", encoding="utf-8") as writer:  # last: marks the encoder complete
        json.dump({"recipe": recipe, "complete": True, "curve": rows, "runs": runner.runs}, writer, indent=2,
                  ensure_ascii=False)
        writer.write("\n")


# --- command line ------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=default_python(),
                        help="python that runs the project scripts (default: the project venv's)")
    sub = parser.add_subparsers(dest="part", required=True)

    data = sub.add_parser("data", help="create_pretraining_data.py instances/s with 1 and 2 workers")
    data.add_argument("--dupe_factor", type=int, default=20, help="about a minute with 1 worker on 2 cores")
    data.add_argument("--workers", default="1,2")
    data.add_argument("--repeats", type=int, default=2, help="runs per worker count, interleaved")
    data.add_argument("--seed", type=int, default=12345)

    eng = sub.add_parser("minilm", help="continue all-MiniLM-L6-v2 on BBC news")
    eng.add_argument("--steps", type=int, default=200)
    eng.add_argument("--batch_size", type=int, default=32)
    eng.add_argument("--learning_rate", type=float, default=1e-4)
    eng.add_argument("--eval_every", type=int, default=50, help="held-out evaluation every this many steps")
    eng.add_argument("--eval_batch_size", type=int, default=32)
    eng.add_argument("--dupe_factor", type=int, default=2)
    eng.add_argument("--hold_out_every", type=int, default=10)
    eng.add_argument("--nsp", action="store_true", help="MLM + next sentence (default: masked LM only)")

    zh = sub.add_parser("chinese", help="pretrain the small Chinese BERT into output/chinese_bert_small")
    # 600 steps at 1e-3 never left the unigram plateau (held-out accuracy 0.054 = always the commonest piece).
    zh.add_argument("--steps", type=int, default=3000)
    zh.add_argument("--batch_size", type=int, default=32)
    zh.add_argument("--learning_rate", type=float, default=5e-4)
    zh.add_argument("--eval_every", type=int, default=500)
    zh.add_argument("--eval_batch_size", type=int, default=50)
    zh.add_argument("--max_eval_batches", type=int, default=40)
    zh.add_argument("--dupe_factor", type=int, default=2)
    zh.add_argument("--hold_out_every", type=int, default=10)
    zh.add_argument("--word_boundaries", default="jieba", choices=["jieba", "none"])
    zh.add_argument("--no_fewclue", dest="fewclue", action="store_false",
                    help="People's Daily only (default: also the FewCLUE unlabeled sentences)")
    zh.add_argument("--force", action="store_true", help="rebuild output/chinese_bert_small from nothing")
    args = parser.parse_args()

    runner = make_runner(os.path.abspath(args.python))
    {"data": data_throughput, "minilm": minilm, "chinese": chinese}[args.part](args, runner)


if __name__ == "__main__":
    main()
