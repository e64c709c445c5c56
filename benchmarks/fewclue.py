"""FewCLUE's own protocol on csldcp, tnews and eprstmt from m3e-small: train on train_few_all.json, report
accuracy on test_public.json, with prototypes (frozen and meta-trained) and run_classifier.py fine-tuning.

  make bench-fewclue          (project .venv; builds models/m3e-small first with `make chinese-model`; reads
                               ../shared/data/fewclue/{csldcp,tnews,eprstmt}, or under $BERT_SHARED_DATA)
  .venv/bin/python benchmarks/fewclue.py --tasks=eprstmt --rows=frozen     (one task, one row)

The encoder is --model_dir, by default models/m3e-small: moka-ai's m3e-small (4 layers, hidden 512, Google's
Chinese vocab, cased; a sentence-embedding model trained for cosine similarity of mean-pooled vectors;
research use only, per its model card) converted by `make chinese-model`. Every run uses mean pooling and
the model's own lower-casing (its tokenizer_config.json: false).

Protocol (FewCLUE's README, translated: "train on train, choose the best model on dev, evaluate on test"): each
task trains on
train_few_all.json (train_0..4 merged, a few labelled examples of every class) and is scored on
test_public.json (labelled). dev_few_all.json is not used: no row here chooses anything on a dev set (no
early stopping, no checkpoint choice, one fixed recipe per row), so every row is "train once, test once".
Texts have their whitespace runs collapsed to one space (no tab or newline can reach a TSV); the same texts
go to every row. Data files are written under OUT/<task>/data (the shared data itself is read in place).

Rows (each run a subprocess with the project venv's python, its whole output in run.log in its folder,
emptied first; TFRecord features cached in OUT/<task>/cache and shared by the run_fewshot.py runs):
  frozen-<distance>  run_fewshot.py --do_predict: prototypes of the train_few_all examples (class means of
            their embeddings) from the encoder as it is, no training; every test_public text goes to the
            nearest prototype. Cosine (what m3e was trained for) and squared Euclidean (--distances).
  frozen-<distance>-adapted  the same with --adapt_steps: a linear head started from those prototypes and
            trained on the train_few_all embeddings alone (encoder frozen); its settings were chosen on
            csldcp's validation disciplines in the episodic benchmark, never on test_public.
  meta      run_fewshot.py --do_train --train_file=train_few_all (episodes drawn from its classes: n_way
            classes, k_shot support + q_query queries each, cosine), then --do_predict from that folder as
            in frozen: prototypes of the train_few_all examples from the meta-trained encoder.
  finetune  run_classifier.py --task_name=jsonl on OUT/<task>/data/jsonl: train.json = train_few_all,
            dev.json = test.json = test_public ({"text", "label"} lines); --do_train --do_eval --do_predict,
            mean pooling, a new softmax layer. Scored on test_public as its dev set (eval_results.json), and
            the driver checks that test_results.tsv scored against the gold labels gives the same accuracy.
            The dev set is only evaluated at the end (no --eval_every_steps): it chooses nothing.
The accuracy of the prototype rows is computed here from predictions.tsv (its label column, read with
bert.files.read_tsv) against the gold labels of test_public, in file order. Checkpoints are deleted after
each row unless --keep_checkpoints (about 290 MB each with the optimizer's slots).

Budget and defaults: the whole benchmark is meant to finish in about 40 minutes on 2 shared cores. Measured
(one run): 40 CPU-minutes, 50 minutes of wall time while other jobs kept both cores busy, two thirds of it
csldcp (its fine-tuning alone 17 CPU-minutes); m3e-small embeds a 128-token text in about 0.04 CPU-seconds and
trains on one in about 0.15, about half that at 64 tokens. max_seq_length 128 for csldcp (abstracts: median
182 tokens with [CLS]/[SEP], 74% cut; the opening sentences name the subject) and 64 for tnews (headlines,
none cut) and eprstmt (reviews, 19% cut). Per task (TASKS below; --train_episodes, --finetune_epochs, --distances and
--max_seq_length override them for every task):
  csldcp   67 classes, 9-37 training examples each: 5-way 3-shot 4-query episodes (K+Q = 7 fits the
           smallest class), 40 episodes; fine-tuning 3 epochs (382 steps); frozen row with cosine only
           (a Euclidean row would embed all 3,820 abstracts again, about 150 CPU-seconds).
  tnews    15 classes, 72-80 each: 5-way 5-shot 5-query, 40 episodes; fine-tuning 3 epochs (223 steps).
  eprstmt  2 classes, 76 and 84: 2-way 8-shot 8-query, 30 episodes (at 100 the episode loss was 0.0002
           and test accuracy below the frozen row's: it memorises 160 reviews); fine-tuning 5 epochs.
Meta-training learning rate 2e-5 with 10% warm-up (m3e is already a sentence encoder: adapt, do not
overwrite); fine-tuning 1e-4, batch 16, 10% warm-up (a small encoder and a new softmax layer of up to 67
classes, with few steps). These are short: 40 episodes see each csldcp class about 3 times. Accuracy
intervals are 95% Wilson intervals over the test texts; a prototype row is compared with fine-tuning on
the same texts by McNemar's test.

Anchors printed beside ours (never measured here): the FewCLUE paper's Table 3 (test_public accuracy, mean
(std) over the five single train_k splits, a 12-layer Chinese RoBERTa) and the FewCLUE repository's
baseline READMEs for models trained on train_few_all, the protocol used here. Sources in ANCHOR_SOURCES.
Results: OUT/report.md (tables, settings, exact commands with wall and CPU seconds) and OUT/results.json.
OUT defaults to output/bench-fewclue.
"""
import argparse
import dataclasses
import glob
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (REPO, SHARED_DATA, Runner, cpu_snapshot, default_python, fresh_dir,  # noqa: E402
                          markdown_table, minutes, other_cores)
from fewshot_common import describe_lengths, token_lengths  # noqa: E402

sys.path.insert(0, REPO)
from bert import files  # noqa: E402  (no TensorFlow import)

DATA_DIR = os.path.join(SHARED_DATA, "fewclue")
DEFAULT_MODEL = os.path.join(REPO, "models", "m3e-small")
DEFAULT_OUTPUT = os.path.join(REPO, "output", "bench-fewclue")
ROWS = ("frozen", "adapted", "meta", "finetune")
# Lines of run_fewshot.py's / run_classifier.py's logs worth echoing while they run.
PROGRESS = re.compile(r"step \d+/\d+|training on \d+ examples|texts into \d+ classes|left out|Traceback|Error")


@dataclasses.dataclass
class Task:
    """One FewCLUE task: where its fields are, and the budget-sized settings of each row."""
    name: str
    text_field: str
    label_field: str
    max_seq_length: int
    n_way: int
    k_shot: int
    q_query: int
    train_episodes: int
    finetune_epochs: float
    frozen_distances: tuple


TASKS = {
    "csldcp": Task("csldcp", "content", "label", 128, n_way=5, k_shot=3, q_query=4, train_episodes=40,
                   finetune_epochs=3, frozen_distances=("cosine",)),
    "tnews": Task("tnews", "sentence", "label_desc", 64, n_way=5, k_shot=5, q_query=5, train_episodes=40,
                  finetune_epochs=3, frozen_distances=("cosine", "euclidean")),
    "eprstmt": Task("eprstmt", "sentence", "label", 64, n_way=2, k_shot=8, q_query=8, train_episodes=30,
                    finetune_epochs=5, frozen_distances=("cosine", "euclidean")),
}

FEWCLUE_REPO = "github.com/CLUEbenchmark/FewCLUE"
FEWCLUE_COMMIT = "62a02c6f31cf32814cfe522f78ef088228840f8d"
ANCHOR_SOURCES = {
    "paper": ("FewCLUE paper (Xu et al. 2021, arXiv:2107.07498) Table 3, as reproduced in the repository README "
              f"(\"实验结果\") by the image resources/img/fewclue_eresult.jpeg, {FEWCLUE_REPO} at {FEWCLUE_COMMIT[:7]}: "
              "test_public accuracy, mean (std) over the five single train_k/dev_k splits (not train_few_all), "
              "the README's base model being the 12-layer chinese_roberta_wwm_ext"),
    "pet": (f"{FEWCLUE_REPO} baselines/models_keras/pet/readme.md (\"test_public.json上实验结果\"), row \"all\" "
            "(trained on train_few_all)"),
    "lmbff": (f"{FEWCLUE_REPO} baselines/models_pytorch/LM-BFF/README.md, column \"few_all\" (prompt-based "
              "fine-tuning of hfl/chinese-roberta-wwm-ext, templates from uer/t5-base-chinese-cluecorpussmall)"),
    "finetune": (f"{FEWCLUE_REPO} baselines/models_tf/fine_tuning/readme.md, table \"FineTuningR\", row \"All\"; "
                 "its csldcp and tnews cells are printed with a \"?\" by the authors (0.016816143?, 0.06666667?: "
                 "chance level, a failed run), its script loads Google's chinese_L-12_H-768_A-12"),
}
# Accuracy % on test_public as printed by those sources (a "?" kept where the source has one).
ANCHORS = [
    ("FewCLUE paper: FineTuningR (fine-tuning, 12-layer RoBERTa), 5 single splits", "paper",
     {"csldcp": "35.5 (2.5)", "tnews": "49.0 (1.6)", "eprstmt": "65.4 (7.7)"}),
    ("FewCLUE paper: PET, 5 single splits", "paper", {"csldcp": "51.7 (1.0)", "tnews": "54.5 (1.2)",
                                                      "eprstmt": "86.7 (1.0)"}),
    ("FewCLUE paper: LM-BFF, 5 single splits", "paper", {"csldcp": "54.4 (3.1)", "tnews": "53.0 (2.1)",
                                                         "eprstmt": "85.6 (0.9)"}),
    ("FewCLUE paper: Human", "paper", {"csldcp": "68.0", "tnews": "71.0", "eprstmt": "90.0"}),
    ("FewCLUE paper: Majority class", "paper", {"csldcp": "1.5", "tnews": "6.7", "eprstmt": "50.0"}),
    ("FewCLUE repo: fine-tuning (FineTuningR), train_few_all", "finetune",
     {"csldcp": "1.68?", "tnews": "6.67?", "eprstmt": "84.92"}),
    ("FewCLUE repo: PET, train_few_all", "pet", {"csldcp": "58.8", "tnews": "55.12", "eprstmt": "88.2"}),
    ("FewCLUE repo: LM-BFF, train_few_all", "lmbff", {"csldcp": "60.15", "tnews": "54.23", "eprstmt": "86.72"}),
]

# Worth knowing when reading the table (printed in the report).
CAVEATS = [
    "The paper's Table 3 rows train on one train_k split at a time (csldcp 536, tnews 240, eprstmt 32 examples), "
    "a quarter to a fifth of train_few_all (2036, 1185, 160), with 12-layer encoders (about 100M parameters; "
    "m3e-small has 24M): the repository's train_few_all rows are the like-for-like anchors.",
    "m3e-small's model card lists csl (395,927 CNKI paper records: title, abstract, keywords, discipline; used "
    "as abstract pairs) among its training sets. csldcp's abstracts come from CSL, so the frozen encoder has "
    "probably seen these texts (not, as far as the card says, their discipline labels as a target); TNews "
    "appears there only as an evaluation set.",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--model_dir", default=DEFAULT_MODEL, help="converted checkpoint (make chinese-model)")
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT)
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--rows", default=",".join(ROWS), help="of " + ",".join(ROWS))
    parser.add_argument("--distances", default=None, help="of the frozen row, every task (default: TASKS)")
    parser.add_argument("--meta_distance", default="cosine", help="of the meta-trained row")
    parser.add_argument("--do_lower_case", default="auto", choices=["auto", "true", "false"],
                        help="auto: the model folder's tokenizer_config.json, else true")
    parser.add_argument("--train_episodes", type=int, default=None, help="every task (default: TASKS)")
    parser.add_argument("--finetune_epochs", type=float, default=None, help="every task (default: TASKS)")
    parser.add_argument("--max_seq_length", type=int, default=None, help="every task (default: TASKS)")
    parser.add_argument("--meta_learning_rate", type=float, default=2e-5)
    parser.add_argument("--adapt_steps", type=int, default=30,
                        help="row (a+): chosen on csldcp's validation disciplines (make bench-fewshot-recipe-csldcp)")
    parser.add_argument("--adapt_learning_rate", type=float, default=1e-2)
    parser.add_argument("--finetune_learning_rate", type=float, default=1e-4)
    parser.add_argument("--finetune_batch_size", type=int, default=16)
    parser.add_argument("--predict_batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--limit_train_per_class", type=int, default=0, help="dry runs: first N per class")
    parser.add_argument("--limit_test", type=int, default=0, help="dry runs: first N test texts")
    parser.add_argument("--keep_checkpoints", action="store_true")
    args = parser.parse_args()
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.rows = [r for r in args.rows.split(",") if r]
    if args.distances is not None:
        args.distances = tuple(d for d in args.distances.split(",") if d)
    for name in args.tasks:
        if name not in TASKS:
            parser.error(f"--tasks: unknown task {name!r} (known: {', '.join(TASKS)})")
    for row in args.rows:
        if row not in ROWS:
            parser.error(f"--rows: unknown row {row!r} (known: {', '.join(ROWS)})")
    return args


def lower_case(args):
    if args.do_lower_case != "auto":
        return args.do_lower_case
    try:
        with open(os.path.join(args.model_dir, "tokenizer_config.json"), encoding="utf-8") as reader:
            return "true" if json.load(reader).get("do_lower_case", True) else "false"
    except (OSError, ValueError):
        return "true"


# --- data -------------------------------------------------------------------------------------


def read_task_file(path, task):
    """[(text, label)] of a FewCLUE JSON-lines file, whitespace runs collapsed to one space."""
    examples = []
    with open(path, encoding="utf-8") as reader:
        for number, line in enumerate(reader, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            text = " ".join(str(record[task.text_field]).split())
            label = str(record[task.label_field]).strip()
            if not text or not label:
                sys.exit(f"{path}:{number}: empty {task.text_field} or {task.label_field}")
            examples.append((text, label))
    return examples


def limited(examples, per_class):
    if not per_class:
        return examples
    seen = {}
    kept = []
    for text, label in examples:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= per_class:
            kept.append((text, label))
    return kept


def write_lines(path, lines):
    files.write_text_atomic(path, "".join(line + "\n" for line in lines))


def write_data(task, train, test, data_dir):
    """support.tsv (train text<TAB>label), test.txt (one test text a line) and jsonl/{train,dev,test}.json."""
    paths = {"support": os.path.join(data_dir, "support.tsv"), "test": os.path.join(data_dir, "test.txt"),
             "jsonl": os.path.join(data_dir, "jsonl")}
    write_lines(paths["support"], (f"{text}\t{label}" for text, label in train))
    write_lines(paths["test"], (text for text, _ in test))

    def jsonl(examples):
        return (json.dumps({"text": text, "label": label}, ensure_ascii=False) for text, label in examples)

    write_lines(os.path.join(paths["jsonl"], "train.json"), jsonl(train))
    write_lines(os.path.join(paths["jsonl"], "dev.json"), jsonl(test))
    write_lines(os.path.join(paths["jsonl"], "test.json"), jsonl(test))
    return paths


def class_counts(examples):
    counts = {}
    for _, label in examples:
        counts[label] = counts.get(label, 0) + 1
    return counts


# --- scoring ----------------------------------------------------------------------------------


def wilson(correct, total, z=1.96):
    """The 95% Wilson interval of correct/total as (low, high) fractions."""
    if not total:
        return float("nan"), float("nan")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def score(predicted, gold, where):
    """{"accuracy", "correct", "total", "ci95": [low, high], "right": [bool per text]} of predicted labels."""
    if len(predicted) != len(gold):
        sys.exit(f"{where}: {len(predicted)} predictions for {len(gold)} test texts")
    right = [p == g for p, g in zip(predicted, gold)]
    correct = sum(right)
    return {"accuracy": correct / len(gold), "correct": correct, "total": len(gold),
            "ci95": list(wilson(correct, len(gold))), "right": right}


def read_prediction_labels(path):
    """The label column of run_fewshot.py's predictions.tsv (header: text, label, probability, distance:...)."""
    rows = files.read_tsv(path)
    if not rows or rows[0][:2] != ["text", "label"]:
        sys.exit(f"{path}: not a predictions.tsv (header {rows[0] if rows else None})")
    return [row[1] for row in rows[1:]]


def read_test_results_labels(path):
    """The last column of run_classifier.py's test_results.tsv (class probabilities, then the label)."""
    return [row[-1] for row in files.read_tsv(path)]


def mcnemar(a_right, b_right):
    """(a right & b wrong, a wrong & b right, two-sided p) of McNemar's test with continuity correction."""
    only_a = sum(1 for x, y in zip(a_right, b_right) if x and not y)
    only_b = sum(1 for x, y in zip(a_right, b_right) if y and not x)
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    chi = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
    return only_a, only_b, math.erfc(math.sqrt(chi / 2))


def pct(result):
    low, high = result["ci95"]
    return f"{100 * result['accuracy']:.2f} [{100 * max(low, 0):.1f}, {100 * min(high, 1):.1f}]"


def remove_checkpoints(folder):
    for path in glob.glob(os.path.join(folder, "model.ckpt-*")) + glob.glob(os.path.join(folder, "best", "*ckpt*")):
        os.remove(path)


# --- the runs ---------------------------------------------------------------------------------


class TaskRuns:
    """The rows of one task: each row's runs through the shared Runner, and its test_public accuracy."""

    def __init__(self, args, runner, task, paths, gold, lower):
        self.args, self.runner, self.task, self.paths, self.gold = args, runner, task, paths, gold
        self.out = os.path.join(args.output_dir, task.name)
        self.model = [f"--bert_config_file={os.path.join(args.model_dir, 'bert_config.json')}",
                      f"--vocab_file={os.path.join(args.model_dir, 'vocab.txt')}",
                      f"--init_checkpoint={args.model_dir}", f"--do_lower_case={lower}",
                      f"--max_seq_length={task.max_seq_length}", "--pooling=mean", f"--seed={args.seed}"]

    def _run(self, name, script, flags, folder, log="run.log"):
        return self.runner.run(f"{self.task.name} {name}", script, flags, os.path.join(folder, log))

    def _predict_flags(self, distance, folder):
        return ["--do_predict", f"--support_file={self.paths['support']}", f"--predict_file={self.paths['test']}",
                f"--distance={distance}", f"--predict_batch_size={self.args.predict_batch_size}",
                f"--cache_dir={os.path.join(self.out, 'cache')}", f"--output_dir={folder}"] + self.model

    def _scored(self, folder, runs):
        path = os.path.join(folder, "predictions.tsv")
        result = score(read_prediction_labels(path), self.gold, path)
        result.update(wall=sum(r["wall"] for r in runs), cpu=sum(r["cpu"] for r in runs),
                      steps=[r["name"] for r in runs])
        return result

    def frozen(self, distance, adapt=()):
        name = f"frozen-{distance}" + ("-adapted" if adapt else "")
        folder = fresh_dir(os.path.join(self.out, name))
        run = self._run(name, "run_fewshot.py", self._predict_flags(distance, folder) + list(adapt), folder)
        return self._scored(folder, [run])

    def meta(self, distance):
        task = self.task
        folder = fresh_dir(os.path.join(self.out, "meta"))
        train = self._run("meta-train", "run_fewshot.py", [
            "--do_train", f"--train_file={self.paths['support']}", f"--n_way={task.n_way}",
            f"--k_shot={task.k_shot}", f"--q_query={task.q_query}", f"--train_episodes={task.train_episodes}",
            f"--learning_rate={self.args.meta_learning_rate:g}", f"--distance={distance}",
            f"--cache_dir={os.path.join(self.out, 'cache')}", f"--output_dir={folder}"] + self.model, folder,
            log="train.log")
        predict = self._run("meta-predict", "run_fewshot.py", self._predict_flags(distance, folder), folder)
        result = self._scored(folder, [train, predict])
        with open(os.path.join(folder, "fewshot_results.json"), encoding="utf-8") as reader:
            result["training"] = json.load(reader).get("training")
        if not self.args.keep_checkpoints:
            remove_checkpoints(folder)
        return result

    def finetune(self):
        task = self.task
        folder = fresh_dir(os.path.join(self.out, "finetune"))
        run = self._run("finetune", "run_classifier.py", [
            "--task_name=jsonl", f"--data_dir={self.paths['jsonl']}", "--text_a_column=text", "--label_column=label",
            "--do_train", "--do_eval", "--do_predict", f"--train_batch_size={self.args.finetune_batch_size}",
            f"--learning_rate={self.args.finetune_learning_rate:g}",
            f"--num_train_epochs={task.finetune_epochs:g}", f"--eval_batch_size={self.args.predict_batch_size}",
            f"--predict_batch_size={self.args.predict_batch_size}", f"--output_dir={folder}"] + self.model, folder)
        path = os.path.join(folder, "test_results.tsv")
        result = score(read_test_results_labels(path), self.gold, path)
        with open(os.path.join(folder, "eval_results.json"), encoding="utf-8") as reader:
            report = json.load(reader)
        if abs(report["accuracy"] - result["accuracy"]) > 1e-6:
            print(f"WARNING: {task.name} fine-tuning: eval_results.json accuracy {report['accuracy']:.6f} on "
                  f"dev.json (= test_public) but test_results.tsv scores {result['accuracy']:.6f}", flush=True)
        result.update(wall=run["wall"], cpu=run["cpu"], steps=[run["name"]], eval_accuracy=report["accuracy"],
                      macro_f1=report.get("macro_f1"), global_step=report.get("global_step"))
        if not self.args.keep_checkpoints:
            remove_checkpoints(folder)
        return result


def prepare(args, task, lower):
    """Reads the task's files, writes the data the runs read; returns (paths, gold labels, description)."""
    folder = os.path.join(args.data_dir, task.name)
    for name in ("train_few_all.json", "test_public.json"):
        if not os.path.exists(os.path.join(folder, name)):
            sys.exit(f"{folder}/{name} is absent: this benchmark reads FewCLUE from ../shared/data/fewclue "
                     "(or $BERT_SHARED_DATA/fewclue)")
    train = limited(read_task_file(os.path.join(folder, "train_few_all.json"), task), args.limit_train_per_class)
    test = read_task_file(os.path.join(folder, "test_public.json"), task)
    if args.limit_test:
        test = test[:args.limit_test]
    paths = write_data(task, train, test, os.path.join(args.output_dir, task.name, "data"))
    counts = class_counts(train)
    unseen = sorted(set(label for _, label in test) - set(counts))
    if unseen:
        sys.exit(f"{task.name}: test_public labels absent from train_few_all: {unseen}")
    sizes = sorted(counts.values())
    smallest = sizes[0]
    if task.k_shot + task.q_query > smallest:
        print(f"note: {task.name}: K+Q = {task.k_shot + task.q_query} > the smallest class ({smallest}); "
              "run_fewshot.py leaves such classes out of meta-training episodes")
    described = {"train": len(train), "classes": len(counts), "per_class": [sizes[0], sizes[-1]],
                 "test": len(test), "test_classes": len(set(label for _, label in test))}
    print(f"\n== {task.name}: {len(train)} training examples (train_few_all), {len(counts)} classes with "
          f"{sizes[0]}-{sizes[-1]} each; {len(test)} test_public texts; data in {os.path.dirname(paths['test'])}",
          flush=True)
    lengths = token_lengths([text for text, _ in train + test], os.path.join(args.model_dir, "vocab.txt"),
                            lower == "true")
    print(describe_lengths(lengths, task.max_seq_length), flush=True)
    return paths, [label for _, label in test], described


# --- the report -------------------------------------------------------------------------------


def row_names(args, tasks):
    names = {}
    for distance in dict.fromkeys(d for t in tasks for d in t.frozen_distances):
        names[f"frozen-{distance}"] = (f"(a) prototypes, frozen encoder, {distance} (no training)")
    names[f"frozen-{args.meta_distance}-adapted"] = (
        f"(a+) the same prototypes, {args.meta_distance}, then a linear head started from them and adapted to "
        f"train_few_all ({args.adapt_steps} Adam steps at {args.adapt_learning_rate:g}; the encoder frozen)")
    episodes = "; ".join(f"{t.name} {t.n_way}w{t.k_shot}s{t.q_query}q x {t.train_episodes}" for t in tasks)
    names["meta"] = f"(b) prototypes after meta-training on train_few_all, {args.meta_distance} ({episodes} episodes)"
    epochs = "; ".join(f"{t.name} {t.finetune_epochs:g}" for t in tasks)
    names["finetune"] = (f"(c) run_classifier.py fine-tuning on train_few_all (epochs: {epochs}; lr "
                         f"{args.finetune_learning_rate:g}, batch {args.finetune_batch_size})")
    return names


def results_table(args, tasks, results, model_name):
    names = row_names(args, tasks)
    keys = [k for k in names if any(k in results[t.name] for t in tasks)]
    header = [f"row (ours: {model_name}; accuracy % on test_public [95% interval])"] + [t.name for t in tasks] + [
        "wall, all tasks"]
    rows = []
    for key in keys:
        cells = [pct(results[t.name][key]) if key in results[t.name] else "not run" for t in tasks]
        wall = sum(results[t.name][key]["wall"] for t in tasks if key in results[t.name])
        rows.append([names[key]] + cells + [minutes(wall)])
    for name, source, by_task in ANCHORS:
        rows.append([f"{name} [{source}]"] + [by_task.get(t.name, "—") for t in tasks] + ["—"])
    return markdown_table(header, rows, align=["---"] + ["---:"] * (len(tasks) + 1))


def settings_table(args, tasks, described, results):
    header = ["task", "train_few_all examples", "classes (per class)", "test_public texts", "max_seq_length",
              "meta-training episodes", "episodes/s", "fine-tuning epochs", "fine-tuning steps"]
    rows = []
    for t in tasks:
        d = described[t.name]
        meta = results[t.name].get("meta", {}).get("training") or {}
        finetune = results[t.name].get("finetune", {})
        rows.append([t.name, d["train"], f"{d['classes']} ({d['per_class'][0]}-{d['per_class'][1]})", d["test"],
                     t.max_seq_length, f"{t.n_way}-way {t.k_shot}-shot {t.q_query}-query x {t.train_episodes}",
                     f"{meta['episodes_per_second']:.2f}" if meta else "—", f"{t.finetune_epochs:g}",
                     finetune.get("global_step", "—")])
    return markdown_table(header, rows)


def comparisons(args, tasks, results):
    """Each prototype row against fine-tuning, per task, on the same test texts."""
    lines = []
    for t in tasks:
        finetune = results[t.name].get("finetune")
        if not finetune:
            continue
        for key, result in results[t.name].items():
            if key == "finetune":
                continue
            only_a, only_b, p = mcnemar(result["right"], finetune["right"])
            delta = 100 * (result["accuracy"] - finetune["accuracy"])
            verdict = "beats" if delta > 0 else "does not beat"
            lines.append(f"- {t.name}: {key} {verdict} fine-tuning ({delta:+.2f} points; right only with {key}: "
                         f"{only_a}, only with fine-tuning: {only_b}; McNemar p = {p:.2g})")
    return "\n".join(lines)


def main():
    args = parse_args()
    if not os.path.exists(os.path.join(args.model_dir, "bert_model.ckpt.index")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make chinese-model` first")
    tasks = []
    for name in args.tasks:
        task = TASKS[name]
        overrides = {k: getattr(args, k) for k in ("train_episodes", "finetune_epochs", "max_seq_length")
                     if getattr(args, k) is not None}
        if args.distances is not None:
            overrides["frozen_distances"] = args.distances
        tasks.append(dataclasses.replace(task, **overrides))
    lower = lower_case(args)
    os.makedirs(args.output_dir, exist_ok=True)
    print(f"encoder: {args.model_dir} (do_lower_case={lower}, mean pooling); tasks {', '.join(args.tasks)}; "
          f"rows {', '.join(args.rows)}; output {args.output_dir}", flush=True)
    runner = Runner(args.python, PROGRESS,
                    announce="\n[{name}] running (cwd {repo}):\n  {command}",
                    done="[{name}] done in {minutes} ({cpu:.0f} CPU-s)",
                    show=lambda command: " ".join([".venv/bin/python" if command[0] == default_python() else
                                                   command[0]] + command[1:]).replace(REPO + os.sep, ""))
    start = cpu_snapshot()
    results, described = {}, {}
    for task in tasks:
        paths, gold, described[task.name] = prepare(args, task, lower)
        runs = TaskRuns(args, runner, task, paths, gold, lower)
        results[task.name] = {}
        if "frozen" in args.rows:
            for distance in task.frozen_distances:
                results[task.name][f"frozen-{distance}"] = runs.frozen(distance)
        if "adapted" in args.rows:
            results[task.name][f"frozen-{args.meta_distance}-adapted"] = runs.frozen(args.meta_distance, [
                f"--adapt_steps={args.adapt_steps}", f"--adapt_learning_rate={args.adapt_learning_rate:g}"])
        if "meta" in args.rows:
            results[task.name]["meta"] = runs.meta(args.meta_distance)
        if "finetune" in args.rows:
            results[task.name]["finetune"] = runs.finetune()
        for key, result in results[task.name].items():
            print(f"{task.name} {key}: accuracy {pct(result)} ({result['correct']}/{result['total']})", flush=True)
    end = cpu_snapshot()
    total, busy = end[0] - start[0], other_cores(start, end)

    model_name = os.path.basename(os.path.normpath(args.model_dir))
    title = (f"## FewCLUE protocol: train on train_few_all.json, accuracy on test_public.json, {model_name} "
             f"(mean pooling, do_lower_case={lower})")
    sources = "\n".join(f"- [{key}] {text}" for key, text in ANCHOR_SOURCES.items())
    report = "\n\n".join([
        title,
        results_table(args, tasks, results, model_name),
        "Anchors (not measured here; as printed by their sources; the paper's are means (std) over the five "
        "single train_k splits, the repository's train on train_few_all as we do):\n\n" + sources,
        "Caveats:\n\n" + "\n".join(f"- {c}" for c in CAVEATS),
        "### Prototype rows against fine-tuning (same test texts)\n\n" + (comparisons(args, tasks, results) or "—"),
        "### Settings\n\n" + settings_table(args, tasks, described, results)
        + f"\n\nmeta-training: learning rate {args.meta_learning_rate:g} (10% warm-up), distance {args.meta_distance}, "
          f"seed {args.seed}; fine-tuning: learning rate {args.finetune_learning_rate:g}, batch "
          f"{args.finetune_batch_size}, 10% warm-up, no checkpoint choice; prediction batch {args.predict_batch_size}"
        + (f"\n\nDRY RUN: train limited to {args.limit_train_per_class} per class, test to {args.limit_test} texts"
           if args.limit_train_per_class or args.limit_test else ""),
        "### Commands (run from the repository root) with wall and CPU seconds\n\n" + runner.commands_markdown(),
        f"total wall time {minutes(total)} on {os.cpu_count()} cores; other processes kept {busy:.2f} cores busy "
        "meanwhile on average",
    ]) + "\n"
    files.write_text_atomic(os.path.join(args.output_dir, "report.md"), report)
    stored = {t: {k: {f: v for f, v in r.items() if f != "right"} for k, r in rows.items()}
              for t, rows in results.items()}
    files.write_text_atomic(os.path.join(args.output_dir, "results.json"), json.dumps(
        {"model_dir": args.model_dir, "tasks": {t.name: dataclasses.asdict(t) for t in tasks},
         "described": described, "results": stored, "anchors": ANCHORS, "anchor_sources": ANCHOR_SOURCES,
         "runs": runner.runs, "total_wall": total, "other_cores": busy}, indent=2, ensure_ascii=False) + "\n")
    print("\n" + report)
    print(f"wrote {os.path.join(args.output_dir, 'report.md')} and results.json")


if __name__ == "__main__":
    main()
