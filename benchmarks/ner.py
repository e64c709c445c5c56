"""Named-entity recognition with run_ner.py on real data: CoNLL-2003 (English), CLUENER and MSRA (Chinese),
and the speed of training and of the exported model.

  make bench-ner-conll     CoNLL-2003 train -> test, all-MiniLM-L6-v2, softmax and CRF (~1 hour on 2 cores)
  make bench-ner-cluener   CLUENER train -> dev, m3e-small, CRF (~25 min)
  make bench-ner-msra      MSRA (dh_msra.txt, split written out), m3e-small, CRF (~30 min)

  python benchmarks/ner.py {conll,cluener,msra} [--help for each]

Data are read in place from ../shared/data (or $BERT_SHARED_DATA); nothing from there is copied into the
project. Everything this script writes goes under output/bench-ner/ (gitignored): per run a folder with
run_ner.py's output (run.log, eval.log, eval_results.json, predictions), its exported SavedModel
(export/1) and benchmark_result.json; the report is <dataset>.md.

Each run: run_ner.py --do_train (timed alone: training speed), run_ner.py --do_eval on the evaluation file
(entity precision / recall / F1, micro and per type, seqeval's default mode), export_savedmodel.py, and the
export's serving_default run over the evaluation texts in this process (batches of --serve_batch_size):
its entities are scored against the gold ones too, so the export is checked on real data, and its speed
measured. Tokens per second count real word pieces ([CLS] and [SEP] included, padding not): in training,
the pieces of every training window times the epochs over the training process's wall time; in the
export, the pieces of the evaluation texts over the time of the serving calls.

  conll:   ../shared/data/conll2003 train.txt (14,041 sentences) -> test.txt (3,453), NER tags (last
           column), BIO, all-MiniLM-L6-v2 (make model), max_seq_length 64 (longer sentences are windows),
           3 epochs at batch 32, learning rate 1e-4; once with a softmax, once with a CRF (--crf=both).
  cluener: ../shared/data/cluener train.json (10,748) -> dev.json (1,343; the test file has no labels),
           m3e-small (make chinese-model; research use only), max_seq_length 64 (texts have at most 50
           characters), 3 epochs, batch 32, 1e-4, CRF.
  msra:    ../shared/data/chinese_nlp_corpus/dh_msra.txt (55,289 sentences, char<TAB>BIO): every 10th
           sentence (the 10th, 20th, ...) is the test set (5,528), the first --msra_train of the others
           train; both written under output/bench-ner/data/msra/ in the same char<TAB>tag format.
           m3e-small, max_seq_length 128 (sentences have at most 100 characters), 2 epochs, CRF.
"""
import argparse
import json
import os
import re
import sys
import time

from bench_common import REPO, SHARED_DATA, Runner, default_python, fresh_dir, minutes

sys.path.insert(0, REPO)
OUTPUT_ROOT = os.path.join(REPO, "output", "bench-ner")
MINILM = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
M3E = os.path.join(REPO, "models", "m3e-small")
CONLL = os.path.join(SHARED_DATA, "conll2003")
CLUENER = os.path.join(SHARED_DATA, "cluener")
MSRA = os.path.join(SHARED_DATA, "chinese_nlp_corpus", "dh_msra.txt")
PROGRESS = re.compile(r"step \d+/\d+|training on \d+|entity precision|rror|Traceback")

DATASETS = {
    # name: model, train, eval, format, max_seq_length, epochs, CRF runs, anchors
    "conll": dict(model=MINILM, train=os.path.join(CONLL, "train.txt"), eval=os.path.join(CONLL, "test.txt"),
                  format="conll", max_seq_length=64, epochs=3.0, crf="both",
                  anchors="BERT-Base 92.4 and BERT-Large 92.8 test F1 (BERT paper, Table 3; a model 5x the size "
                          "of MiniLM-L6, with document context)"),
    "cluener": dict(model=M3E, train=os.path.join(CLUENER, "train.json"), eval=os.path.join(CLUENER, "dev.json"),
                    format="cluener", max_seq_length=64, epochs=3.0, crf="yes",
                    anchors="BiLSTM-CRF 70.00 and BERT-Base 78.82 dev F1 (CLUENER2020 paper, arXiv 2001.04351)"),
    "msra": dict(model=M3E, train=None, eval=None, format="char_bio", max_seq_length=128, epochs=2.0, crf="yes",
                 anchors="BERT-Base 92.6 and ERNIE 1.0 93.8 test F1 (ERNIE README; trained on all 46k MSRA "
                         "training sentences, tested on the official 4.4k test set, not this split)"),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--crf", choices=("yes", "no", "both"), default=None, help="default: the dataset's")
    parser.add_argument("--model_dir", default=None, help="default: the dataset's (models/...)")
    parser.add_argument("--max_seq_length", type=int, default=None)
    parser.add_argument("--num_train_epochs", type=float, default=None)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--msra_train", type=int, default=8000, help="msra: training sentences")
    parser.add_argument("--serve_batch_size", type=int, default=32)
    parser.add_argument("--output_root", default=OUTPUT_ROOT)
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--keep_checkpoints", action="store_true")
    parser.add_argument("--resume", action="store_true",
                        help="reuse a run folder whose training finished (its train_record.json) instead of training")
    args = parser.parse_args()
    settings = dict(DATASETS[args.dataset])
    for name in ("crf", "model_dir", "max_seq_length", "num_train_epochs"):
        key = {"model_dir": "model", "num_train_epochs": "epochs"}.get(name, name)
        if getattr(args, name) is None:
            setattr(args, name, settings[key])
    return args, settings


def lower_case(model_dir):
    try:
        with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as reader:
            return bool(json.load(reader).get("do_lower_case", True))
    except (OSError, ValueError):
        return True


def split_msra(args):
    """MSRA's sentences: every 10th to test, the first args.msra_train of the others to train; written out."""
    from bert import ner
    sentences = ner.read_char_bio(MSRA)
    test = [s for i, s in enumerate(sentences) if i % 10 == 9]
    train = [s for i, s in enumerate(sentences) if i % 10 != 9][:args.msra_train]
    folder = os.path.join(args.output_root, "data", "msra")
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, part in (("train", train), ("test", test)):
        lines = []
        for sentence in part:
            lines += [f"{word}\t{tag}" for word, tag in zip(sentence.words, sentence.tags)] + [""]
        path = paths[name] = os.path.join(folder, f"{name}.txt")
        with open(path + ".tmp", "w", encoding="utf-8") as writer:
            writer.write("\n".join(lines))
        os.replace(path + ".tmp", path)
    print(f"MSRA split: {len(sentences)} sentences; test = every 10th ({len(test)}), train = the first "
          f"{len(train)} of the others; written to {os.path.relpath(folder, REPO)}", flush=True)
    return paths["train"], paths["test"]


def window_pieces(path, data_format, model_dir, max_seq_length, do_lower_case):
    """Real word pieces ([CLS]/[SEP] included) of every window of a data file, as run_ner.py converts them."""
    from bert import ner, tagging, tasks, tokenization
    sentences, _ = ner.read_ner_file(path, data_format)
    tokenizer = tokenization.FullTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=do_lower_case)
    task = tasks.TokenClassificationTask(["O"], tokenizer, max_seq_length)
    return sum(sum(f["input_mask"]) for s in sentences
               for f in task.convert(tagging.TaggedWords(list(s.words)), training=False))


def serve(export_dir, eval_file, data_format, batch_size, pieces):
    """The export's serving_default over the evaluation texts: its entity scores against the gold ones,
    texts/s and pieces/s (`pieces`: the real word pieces of their windows) over the serving calls."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    from bert import export, ner
    sentences, _ = ner.read_ner_file(eval_file, data_format)
    signature = tf.saved_model.load(export.resolve_saved_model(export_dir)).signatures[export.SIGNATURE_TEXT]
    texts = [s.text for s in sentences]
    signature(text_a=tf.constant(texts[:batch_size]))  # warm-up: the first call builds the function
    predicted, seconds = [], 0.0
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start:start + batch_size])
        begin = time.perf_counter()
        out = {name: value.numpy() for name, value in signature(text_a=batch).items()}
        seconds += time.perf_counter() - begin
        for row in range(len(out["entity_count"])):
            predicted.append([ner.Entity(int(out["entity_start"][row][k]), int(out["entity_end"][row][k]),
                                         out["entity_type"][row][k].decode("utf-8"))
                              for k in range(int(out["entity_count"][row]))])
    scores = ner.span_scores([s.entities for s in sentences], predicted)
    return dict(scores=scores, texts_per_second=len(texts) / seconds, pieces_per_second=pieces / seconds,
                serve_seconds=seconds, batch_size=batch_size)


def one_run(args, settings, runner, use_crf, train_file, eval_file):
    name = f"{args.dataset}-{'crf' if use_crf else 'softmax'}"
    run_dir = os.path.join(args.output_root, name)
    record_path = os.path.join(run_dir, "train_record.json")
    resume = args.resume and os.path.exists(record_path)
    if not resume:
        fresh_dir(run_dir)
    model = args.model_dir
    do_lower_case = lower_case(model)
    common = [f"--vocab_file={model}/vocab.txt", f"--bert_config_file={model}/bert_config.json",
              f"--do_lower_case={str(do_lower_case).lower()}", f"--data_format={settings['format']}",
              f"--max_seq_length={args.max_seq_length}", f"--output_dir={run_dir}",
              f"--cache_dir={os.path.join(args.output_root, 'cache')}", "--predict_batch_size=64"]
    if resume:
        with open(record_path, encoding="utf-8") as reader:
            train = json.load(reader)
        print(f"[{name} train] reusing {os.path.relpath(run_dir, REPO)} (trained in {minutes(train['wall'])})")
    else:
        train = runner.run(name + " train", os.path.join(REPO, "run_ner.py"), common + [
            "--do_train", f"--train_file={train_file}", f"--init_checkpoint={model}",
            f"--use_crf={str(use_crf).lower()}", f"--num_train_epochs={args.num_train_epochs:g}",
            f"--train_batch_size={args.train_batch_size}", f"--learning_rate={args.learning_rate:g}",
            f"--seed={args.seed}", "--save_checkpoints_steps=1000000"], os.path.join(run_dir, "run.log"))
        with open(record_path, "w", encoding="utf-8") as writer:
            json.dump(train, writer)
    evaluation = runner.run(name + " eval", os.path.join(REPO, "run_ner.py"),
                            common + ["--do_eval", f"--eval_file={eval_file}"], os.path.join(run_dir, "eval.log"))
    with open(os.path.join(run_dir, "eval_results.json"), encoding="utf-8") as reader:
        metrics = json.load(reader)
    exported = runner.run(name + " export", os.path.join(REPO, "export_savedmodel.py"),
                          [f"--model_dir={run_dir}", f"--export_dir={fresh_dir(run_dir + '/export')}"],
                          os.path.join(run_dir, "export.log"))
    served = serve(os.path.join(run_dir, "export"), eval_file, settings["format"], args.serve_batch_size,
                   window_pieces(eval_file, settings["format"], model, args.max_seq_length, do_lower_case))
    pieces = window_pieces(train_file, settings["format"], model, args.max_seq_length, do_lower_case)
    result = dict(name=name, use_crf=use_crf, metrics=metrics, served=served, train_command=train["command"],
                  eval_command=evaluation["command"], export_command=exported["command"],
                  train_wall=train["wall"], train_cpu=train["cpu"], eval_wall=evaluation["wall"],
                  train_pieces_per_epoch=pieces,
                  train_pieces_per_second=pieces * args.num_train_epochs / train["wall"])
    if not args.keep_checkpoints:
        for file_name in os.listdir(run_dir):
            if file_name.startswith("model.ckpt-"):
                os.remove(os.path.join(run_dir, file_name))
    with open(os.path.join(run_dir, "benchmark_result.json"), "w", encoding="utf-8") as writer:
        json.dump(result, writer, indent=1, ensure_ascii=False)
    return result


def report(args, settings, results, train_file, eval_file):
    rows = ["| head | precision | recall | F1 | export F1 | train pieces/s | export pieces/s (texts/s) | "
            "train wall (CPU) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        m, s = r["metrics"], r["served"]
        rows.append(f"| {'CRF' if r['use_crf'] else 'softmax'} | {100 * m['precision']:.2f} | {100 * m['recall']:.2f} "
                    f"| {100 * m['f1']:.2f} | {100 * s['scores']['f1']:.2f} | {r['train_pieces_per_second']:.0f} | "
                    f"{s['pieces_per_second']:.0f} ({s['texts_per_second']:.0f}) | {minutes(r['train_wall'])} "
                    f"({minutes(r['train_cpu'])}) |")
    types = sorted(results[0]["metrics"]["per_type"])
    per_type = ["| type | " + " | ".join(f"F1 {'CRF' if r['use_crf'] else 'softmax'}" for r in results) + " | support |",
                "| --- |" + " ---: |" * (len(results) + 1)]
    for kind in types:
        cells = [f"{100 * r['metrics']['per_type'][kind]['f1']:.2f}" for r in results]
        per_type.append(f"| {kind} | " + " | ".join(cells) + f" | {results[0]['metrics']['per_type'][kind]['support']} |")
    commands = "\n".join(f"    {r[key]}" for r in results for key in ("train_command", "eval_command", "export_command"))
    text = (f"### NER: {args.dataset}, {os.path.relpath(args.model_dir, REPO)}\n\n"
            f"train {os.path.relpath(train_file, os.path.dirname(REPO))} -> evaluate "
            f"{os.path.relpath(eval_file, os.path.dirname(REPO))}; max_seq_length {args.max_seq_length}, "
            f"{args.num_train_epochs:g} epochs, batch {args.train_batch_size}, learning rate {args.learning_rate:g}, "
            f"seed {args.seed}. Entity-level micro precision / recall / F1 (seqeval's default mode) from "
            f"run_ner.py --do_eval; export F1: the exported SavedModel's in-graph entities on the raw texts, "
            f"scored against the gold character spans. Pieces/s: real word pieces, {os.cpu_count()} CPU cores "
            f"(shared machine; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end).\n\n"
            + "\n".join(rows) + "\n\nPer type (F1):\n\n" + "\n".join(per_type)
            + f"\n\nAnchors: {settings['anchors']}.\n\nCommands:\n\n{commands}\n")
    path = os.path.join(args.output_root, f"{args.dataset}.md")
    with open(path, "w", encoding="utf-8") as writer:
        writer.write(text)
    print("\n" + text + f"\n(written to {os.path.relpath(path, REPO)})")


def main():
    args, settings = parse_args()
    if not os.path.exists(os.path.join(args.model_dir, "bert_config.json")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make model` / `make chinese-model` first")
    if args.dataset == "msra":
        if not os.path.exists(MSRA):
            sys.exit(f"{MSRA} is absent: the MSRA data is read from ../shared/data")
        train_file, eval_file = split_msra(args)
    else:
        train_file, eval_file = settings["train"], settings["eval"]
        for path in (train_file, eval_file):
            if not os.path.exists(path):
                sys.exit(f"{path} is absent: this benchmark reads it from ../shared/data (or $BERT_SHARED_DATA)")
    runner = Runner(args.python, PROGRESS, announce="\n[{name}] {command}", done="[{name}] {minutes}")
    crf_runs = {"yes": [True], "no": [False], "both": [False, True]}[args.crf]
    results = [one_run(args, settings, runner, use_crf, train_file, eval_file) for use_crf in crf_runs]
    report(args, settings, results, train_file, eval_file)


if __name__ == "__main__":
    main()
