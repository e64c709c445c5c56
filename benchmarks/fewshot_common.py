"""What the few-shot benchmark drivers share: running run_fewshot.py, reading its results, tables.

Not a benchmark itself; imported by fewshot_clinc150.py and fewshot_csldcp.py. Every run_fewshot.py
call goes through run(): a subprocess with the given python (the project venv's), its full output in
run.log in the run's folder, progress lines echoed, the exact command line printed and kept.
"""
import json
import os
import re
import sys

from bench_common import (REPO, SHARED_DATA, SMALL_CHINESE_CONFIG, default_python, fresh_dir, minutes,  # noqa: F401
                          quoted, run_logged)

# Lines of run_fewshot.py's log worth echoing while it runs.
PROGRESS = re.compile(r"step \d+/\d+|validation \S+ accuracy|left out|error|Error|Traceback")


def require_file(path, what):
    if not os.path.exists(path):
        sys.exit(f"{path} is absent: {what}")


class Runner:
    """Runs run_fewshot.py and remembers every command line and wall time, in order."""

    def __init__(self, python):
        self.python = python
        self.runs = []  # (name, command line, seconds)

    def run(self, name, flags, output_dir):
        command = [self.python, "run_fewshot.py"] + flags + [f"--output_dir={output_dir}"]
        line = quoted(command)
        print(f"\n[{name}] running (cwd {REPO}):\n  {line}", flush=True)
        _, seconds, _ = run_logged(command, os.path.join(output_dir, "run.log"), PROGRESS)
        print(f"[{name}] done in {minutes(seconds)}", flush=True)
        self.runs.append((name, line, seconds))
        with open(os.path.join(output_dir, "fewshot_results.json"), encoding="utf-8") as reader:
            results = json.load(reader)
        with open(os.path.join(output_dir, "fewshot_results.md"), encoding="utf-8") as reader:
            results["table"] = reader.read()
        return results

    def print_commands(self):
        print("\nCommands run (cwd " + REPO + "), with wall times:\n")
        for name, line, seconds in self.runs:
            print(f"- {name} ({minutes(seconds)}):\n\n      {line}\n")


def add_run_flags(parser, max_seq_length, k_shot, q_query, train_episodes, learning_rate, eval_every_steps,
                  eval_settings):
    """The flags both few-shot drivers pass on to run_fewshot.py, with each driver's defaults."""
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--distance", default="cosine", choices=["euclidean", "cosine"])
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--max_seq_length", type=int, default=max_seq_length)
    parser.add_argument("--n_way", type=int, default=5)
    parser.add_argument("--k_shot", type=int, default=k_shot)
    parser.add_argument("--q_query", type=int, default=q_query)
    parser.add_argument("--train_episodes", type=int, default=train_episodes)
    parser.add_argument("--learning_rate", type=float, default=learning_rate)
    parser.add_argument("--eval_every_steps", type=int, default=eval_every_steps)
    parser.add_argument("--val_episodes", type=int, default=1000)
    parser.add_argument("--eval_settings", default=eval_settings)
    parser.add_argument("--eval_episodes", type=int, default=1000)
    parser.add_argument("--eval_q_query", type=int, default=15)
    parser.add_argument("--baseline_settings", default="5w1s,5w5s,10w1s,10w5s", help="empty: no baseline run")
    parser.add_argument("--baseline_episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("extra", nargs="*", help="more run_fewshot.py flags (for every run), after --")


def cell(result):
    return f"{100 * result['accuracy']:.2f} ± {100 * result['ci95']:.2f}" if result else "—"


def combined_table(rows, settings, references=None):
    """rows: [(name, {setting: result}), ...] -> markdown, one column per setting plus episodes.

    references: [(name, {setting: accuracy %}), ...] printed as given (no interval known).
    """
    lines = ["| model | " + " | ".join(settings) + " | episodes per setting |",
             "| --- |" + " ---: |" * (len(settings) + 1)]
    for name, by_setting in rows:
        cells = [cell(by_setting.get(s)) for s in settings]
        episodes = sorted({by_setting[s]["episodes"] for s in settings if s in by_setting})
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {', '.join(map(str, episodes))} |")
    for name, by_setting in references or []:
        cells = [by_setting.get(s, "—") for s in settings]
        lines.append(f"| {name} | " + " | ".join(cells) + " | 1000 |")
    return "\n".join(lines)


def speed_table(rows, settings):
    """Evaluation episodes per second of each row and setting (from each result's episodes_per_second)."""
    lines = ["| evaluation episodes/s | " + " | ".join(settings) + " |", "| --- |" + " ---: |" * len(settings)]
    for name, by_setting in rows:
        cells = [f"{by_setting[s]['episodes_per_second']:.3g}" if s in by_setting else "—" for s in settings]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison(meta, other, settings, other_name):
    """Per setting: meta-trained minus other (points), and whether the difference exceeds the two intervals."""
    lines = [f"| setting | meta-trained − {other_name} (points) | beyond both 95% intervals |",
             "| --- | ---: | --- |"]
    for s in settings:
        delta = 100 * (meta[s]["accuracy"] - other[s]["accuracy"])
        separated = abs(delta) > 100 * (meta[s]["ci95"] + other[s]["ci95"])
        lines.append(f"| {s} | {delta:+.2f} | {'yes' if separated else 'no'} |")
    return "\n".join(lines)


def verdict(meta, frozen, settings):
    """(beats at every 1-shot setting, loses nowhere) by mean accuracy."""
    one_shot = [s for s in settings if s.endswith("w1s")]
    beats = all(meta[s]["accuracy"] > frozen[s]["accuracy"] for s in one_shot)
    losses = [s for s in settings if meta[s]["accuracy"] < frozen[s]["accuracy"]]
    return beats, losses


def token_lengths(texts, vocab_file, do_lower_case):
    """Token counts with [CLS] and [SEP], by the project's own tokenizer (None if it cannot be imported)."""
    sys.path.insert(0, REPO)
    try:
        from bert import tokenization
    except ImportError:
        return None
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    return sorted(len(tokenizer.tokenize(text)) + 2 for text in texts)


def describe_lengths(lengths, max_seq_length):
    if not lengths:
        return "token lengths: not measured (bert.tokenization not importable with this python)"
    count = len(lengths)

    def pct(p):
        return lengths[min(int(p / 100 * count), count - 1)]

    cut = sum(1 for n in lengths if n > max_seq_length)
    return (f"token lengths with [CLS]/[SEP] over {count} texts: median {pct(50)}, 95th percentile {pct(95)}, "
            f"99th {pct(99)}, max {lengths[-1]}; --max_seq_length={max_seq_length} truncates {cut} "
            f"({100 * cut / count:.2f}%)")
