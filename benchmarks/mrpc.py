"""Fine-tunes all-MiniLM-L6-v2 on GLUE MRPC with run_classifier.py and prints dev accuracy and F1.

  make bench-mrpc           (the project's .venv; reads ../shared/data/mrpc, or $BERT_SHARED_DATA/mrpc)

run_classifier.py runs in a subprocess with the project venv's python and the flags printed with the
results (the defaults below: length 128, batch 32, 3 epochs at 5e-5 with 10% warm-up, mean pooling,
which takes about 12 minutes on 2 CPU cores). With BERT's pooled output at 1e-4 the run collapsed to the
majority class (accuracy 0.684, training loss flat at the label prior's entropy); which of the two changes
fixed it was not measured. Each run writes into a new folder under /tmp (or --output_dir,
which must be empty); its log is run.log there, and its checkpoints are deleted at the end unless
--keep_checkpoints. Results are read from the run's eval_results.json; "F1" is the positive
class's (paraphrase), as GLUE reports MRPC.
"""
import argparse
import glob
import json
import os
import re
import sys
import tempfile

from bench_common import REPO, SHARED_DATA, Runner, default_python

sys.path.insert(0, REPO)
DEFAULT_MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.path.join(SHARED_DATA, "mrpc"))
    parser.add_argument("--model_dir", default=DEFAULT_MODEL, help="converted checkpoint (make model)")
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--output_dir", default=None, help="default: a new folder under /tmp")
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--num_train_epochs", type=float, default=3.0)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--pooling", default="mean", help="mean (how all-MiniLM-L6-v2 was trained), pooled "
                        "(BERT's tanh pooler) or cls")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--keep_checkpoints", action="store_true")
    parser.add_argument("extra", nargs="*", help="more run_classifier.py flags, after --")
    return parser.parse_args()


def count_train_examples(data_dir):
    import processors
    return len(processors.get_processor("mrpc").get_train_examples(data_dir))


# run_classifier.py's log lines worth echoing while it runs.
PROGRESS = re.compile(r"step \d+/\d+|training on \d+ examples|eval_results|error")


def main():
    args = parse_args()
    if not os.path.exists(os.path.join(args.data_dir, "train.tsv")):
        sys.exit(f"{args.data_dir}/train.tsv is absent: this benchmark reads GLUE MRPC from ../shared/data/mrpc "
                 "(or $BERT_SHARED_DATA/mrpc)")
    if not os.path.exists(os.path.join(args.model_dir, "bert_config.json")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make model` first")
    if args.output_dir:
        if os.path.isdir(args.output_dir) and os.listdir(args.output_dir):
            sys.exit(f"{args.output_dir} is not empty: the Estimator would resume from its checkpoints")
        os.makedirs(args.output_dir, exist_ok=True)
        output_dir = args.output_dir
    else:
        output_dir = tempfile.mkdtemp(prefix="bench-mrpc-")

    flags = [
        "--task_name=mrpc", "--do_train", "--do_eval", "--do_lower_case=true",
        f"--data_dir={args.data_dir}",
        f"--vocab_file={os.path.join(args.model_dir, 'vocab.txt')}",
        f"--bert_config_file={os.path.join(args.model_dir, 'bert_config.json')}",
        f"--init_checkpoint={args.model_dir}",
        f"--max_seq_length={args.max_seq_length}", f"--train_batch_size={args.train_batch_size}",
        f"--learning_rate={args.learning_rate:g}", f"--num_train_epochs={args.num_train_epochs:g}",
        f"--pooling={args.pooling}", f"--seed={args.seed}", f"--output_dir={output_dir}",
    ] + args.extra
    train_examples = count_train_examples(args.data_dir)
    # Shown as typed from the repository root: the script by its name, the flags as they are.
    runner = Runner(args.python, PROGRESS, announce="running: {command}",
                    show=lambda command: " ".join(command[:1] + ["run_classifier.py"] + command[2:]))
    seconds = runner.run("run_classifier.py", os.path.join(REPO, "run_classifier.py"), flags,
                         os.path.join(output_dir, "run.log"))["wall"]

    with open(os.path.join(output_dir, "eval_results.json"), encoding="utf-8") as reader:
        report = json.load(reader)
    if not args.keep_checkpoints:
        for path in glob.glob(os.path.join(output_dir, "model.ckpt-*")):
            os.remove(path)

    steps = report["global_step"]
    print(f"\nGLUE MRPC dev ({sum(c['support'] for c in report['per_class'].values())} pairs), all-MiniLM-L6-v2 "
          f"fine-tuned with run_classifier.py; output in {output_dir}\n")
    print("| dev accuracy | dev F1 (paraphrase) | dev macro F1 | epochs | train examples | steps | learning rate "
          "| max_seq_length | batch | pooling | wall time |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    print(f"| {report['accuracy']:.4f} | {report['f1']:.4f} | {report['macro_f1']:.4f} | {args.num_train_epochs:g} "
          f"| {train_examples} | {steps} | {args.learning_rate:g} | {args.max_seq_length} | {args.train_batch_size} "
          f"| {args.pooling} | {seconds / 60:.1f} min |")
    print(f"\nwall time covers the whole run_classifier.py process: start-up, tokenization, {steps} training steps, "
          "evaluation. (BERT-Base reaches about 84-88 accuracy on MRPC dev.)")


if __name__ == "__main__":
    main()
