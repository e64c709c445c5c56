"""What the few-shot benchmark drivers share: running run_fewshot.py, reading its results, tables, and
the whole run-and-report flow (run_benchmark) once a driver has written its data.

Not a benchmark itself; imported by fewshot_clinc150.py and fewshot_csldcp.py. Every run_fewshot.py
call goes through run_fewshot(): a subprocess with the given python (the project venv's), its full
output in run.log in the run's folder, progress lines echoed, the exact command line printed and kept.
"""
import json
import os
import re
import sys
import time

from bench_common import (REPO, SHARED_DATA, SMALL_CHINESE_CONFIG, Runner, default_python, fresh_dir,  # noqa: F401
                          minutes)

# Lines of run_fewshot.py's log worth echoing while it runs.
PROGRESS = re.compile(r"step \d+/\d+|validation \S+ accuracy|left out|error|Error|Traceback")


def require_file(path, what):
    if not os.path.exists(path):
        sys.exit(f"{path} is absent: {what}")


def make_runner(python):
    """A Runner for run_fewshot.py with `python`: prints each command line and its wall time."""
    return Runner(python, PROGRESS, announce="\n[{name}] running (cwd {repo}):\n  {command}",
                  done="[{name}] done in {minutes}")


def run_fewshot(runner, name, flags, output_dir):
    """run_fewshot.py flags --output_dir=output_dir through runner; its fewshot_results.json, with the
    markdown table of fewshot_results.md under "table"."""
    runner.run(name, "run_fewshot.py", flags + [f"--output_dir={output_dir}"], os.path.join(output_dir, "run.log"))
    with open(os.path.join(output_dir, "fewshot_results.json"), encoding="utf-8") as reader:
        results = json.load(reader)
    with open(os.path.join(output_dir, "fewshot_results.md"), encoding="utf-8") as reader:
        results["table"] = reader.read()
    return results


def add_run_flags(parser, max_seq_length, k_shot, q_query, train_episodes, learning_rate, eval_every_steps,
                  eval_settings):
    """The flags both few-shot drivers pass on to run_fewshot.py, with each driver's defaults."""
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--distance", default="cosine",
                        help="a prototype distance of bert/heads.py's DISTANCES (run_fewshot.py refuses others)")
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--max_seq_length", type=int, default=max_seq_length)
    parser.add_argument("--n_way", default="5:10", help="a number or a range LOW:HIGH (run_fewshot.py)")
    parser.add_argument("--k_shot", default=str(k_shot), help="a number or a range LOW:HIGH (run_fewshot.py)")
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
    parser.add_argument("--adapt_steps", type=int, default=0,
                        help="> 0: the meta run also evaluates the meta-trained model adapted to each support set")
    parser.add_argument("--adapt_learning_rate", type=float, default=1e-2)
    parser.add_argument("--adapt_layers", type=int, default=0)
    parser.add_argument("extra", nargs="*", help="more run_fewshot.py flags (for every run), after --")


def cell(result):
    return f"{100 * result['accuracy']:.2f} ± {100 * result['ci95']:.2f}" if result else "—"


def combined_table(rows, settings, references=None, encoder=None):
    """rows: [(name, {setting: result}), ...] -> markdown, one column per setting plus episodes.

    references: [(name, {setting: accuracy %}), ...] printed as given (no interval known).
    encoder: the encoder that produced every row, in an encoder column (none when None).
    """
    model = "| model | " + ("encoder | " if encoder else "")
    lines = [model + " | ".join(settings) + " | episodes per setting |",
             "| --- |" + (" --- |" if encoder else "") + " ---: |" * (len(settings) + 1)]
    for name, by_setting in rows:
        cells = [cell(by_setting.get(s)) for s in settings]
        episodes = sorted({by_setting[s]["episodes"] for s in settings if s in by_setting})
        lines.append(f"| {name} | " + (f"{encoder} | " if encoder else "") + " | ".join(cells)
                     + f" | {', '.join(map(str, episodes))} |")
    for name, by_setting in references or []:
        cells = [by_setting.get(s, "—") for s in settings]
        lines.append(f"| {name} | " + ("— | " if encoder else "") + " | ".join(cells) + " | 1000 |")
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


def run_benchmark(args, shared, *, untrained_only, untrained, untrained_label, title, eval_flags=(),
                  baseline_flags=(), references=None, validation="", show_verdict=False, compare_finetune=False,
                  encoder=None, report_file=None, val_setting=None):
    """The runs and the report both few-shot drivers make, once their data are written.

    args: the parsed flags (add_run_flags' and output_dir); shared: the run_fewshot.py flags of every
    run (data, vocab, config, encoder, ...), args.extra follows them. With untrained_only, one --do_eval
    run of the untrained encoder in OUT/<name>-<distance>; else "meta" (--do_train --do_eval) in OUT/meta
    and, unless --baseline_settings is empty, "baseline" (--baseline=finetune) in OUT/baseline.
    untrained: (run name, its row in run_fewshot.py's results); untrained_label: what the comparison
    calls it. title(first run's folder): the heading above the combined table. eval_flags follow
    --eval_settings in every run; baseline_flags follow --baseline_episodes. references: rows for
    combined_table; validation: said of the validation classes in the meta-training line. show_verdict:
    whether meta-training beats the untrained encoder at every 1-shot setting; compare_finetune:
    meta-trained against fine-tuning on the baseline's settings. encoder: named in the combined table's
    encoder column (none when None). report_file: the summary printed at the end is also written there
    (markdown, with the commands as a table of wall and CPU seconds). val_setting: the setting the
    validation during meta-training scores (run_fewshot.py validates on the first of --eval_settings, so
    the meta run lists it first; the tables keep args.eval_settings' order); None: the first one.
    """
    settings = args.eval_settings.split(",")
    val_setting = val_setting or settings[0]
    if val_setting not in settings:
        sys.exit(f"the validation setting {val_setting} is not one of --eval_settings={args.eval_settings}")
    meta_settings = ",".join([val_setting] + [s for s in settings if s != val_setting])
    untrained_name, untrained_row = untrained
    runner = make_runner(args.python)
    start = time.perf_counter()
    rows, results = [], {}
    if untrained_only:
        first = out = fresh_dir(os.path.join(args.output_dir, f"{untrained_name}-{args.distance}"))
        results[untrained_name] = run_fewshot(runner, untrained_name, [
            "--do_eval", f"--eval_settings={args.eval_settings}"] + list(eval_flags) + shared + args.extra, out)
        print("\n" + results[untrained_name]["table"])
        rows.append((untrained_row, results[untrained_name]["rows"][untrained_row]))
    else:
        first = out = fresh_dir(os.path.join(args.output_dir, "meta"))
        results["meta"] = run_fewshot(runner, "meta", [
            "--do_train", "--do_eval", f"--n_way={args.n_way}", f"--k_shot={args.k_shot}",
            f"--q_query={args.q_query}", f"--train_episodes={args.train_episodes}",
            f"--learning_rate={args.learning_rate:g}", f"--eval_every_steps={args.eval_every_steps}",
            f"--val_episodes={args.val_episodes}", f"--eval_settings={meta_settings}"]
            + ([f"--adapt_steps={args.adapt_steps}", f"--adapt_learning_rate={args.adapt_learning_rate:g}",
                f"--adapt_layers={args.adapt_layers}"] if args.adapt_steps else [])
            + list(eval_flags) + shared + args.extra, out)
        print("\n" + results["meta"]["table"])
        rows += list(results["meta"]["rows"].items())
        if args.baseline_settings:
            out = fresh_dir(os.path.join(args.output_dir, "baseline"))
            results["baseline"] = run_fewshot(runner, "baseline", [
                "--do_eval", "--baseline=finetune", f"--baseline_episodes={args.baseline_episodes}"]
                + list(baseline_flags) + [f"--eval_settings={args.baseline_settings}"]
                + list(eval_flags) + shared + args.extra, out)
            print("\n" + results["baseline"]["table"])
            finetune = results["baseline"]["rows"]["fine-tuning"]
            rows.append((f"fine-tuning ({args.baseline_episodes} episodes)", finetune))
    total = time.perf_counter() - start
    summary = []

    def say(text):
        print(text)
        summary.append(text)

    say(title(first))
    say(combined_table(rows, settings, references, encoder))
    say("\n" + speed_table(rows, settings))
    if "meta" in results:
        training = results["meta"]["training"]
        say(f"\nmeta-training: {training['episodes']} episodes of {args.n_way}-way {args.k_shot}-shot "
            f"{args.q_query}-query at {training['episodes_per_second']:.2f} episodes/s "
            f"(training steps only, validation excluded); learning rate {args.learning_rate:g}, "
            f"validation every {args.eval_every_steps} episodes{validation} "
            f"({val_setting}, {args.val_episodes} episodes; the best checkpoint is the meta-trained row)")
        meta, other = results["meta"]["rows"]["meta-trained"], results["meta"]["rows"][untrained_row]
        say("\n" + comparison(meta, other, settings, untrained_label))
        if show_verdict:
            beats, losses = verdict(meta, other, settings)
            say(f"\nmeta-trained beats {untrained_label} at every 1-shot setting: {'yes' if beats else 'NO'}; "
                f"settings where it is below {untrained_label}: {', '.join(losses) if losses else 'none'}")
        if compare_finetune and "baseline" in results:
            finetune = results["baseline"]["rows"]["fine-tuning"]
            both = [s for s in settings if s in finetune]
            say("\n" + comparison(meta, finetune, both, "fine-tuning"))
            best = [("meta-trained", meta)] + [(name, row) for name, row in results["meta"]["rows"].items()
                                               if name.endswith("+ adaptation")]
            for best_name, best_row in best:
                for name, row, where in ((untrained_label, other, settings), ("fine-tuning", finetune, both)):
                    below = [s for s in where if best_row[s]["accuracy"] <= row[s]["accuracy"]]
                    say(f"\n{best_name} above {name} in every setting ({', '.join(where)}): "
                        f"{'yes' if not below else 'NO, not at ' + ', '.join(below)}")
    runner.print_commands()
    cpu = sum(r["cpu"] for r in runner.runs)
    say(f"total wall time {minutes(total)}, CPU time {minutes(cpu)} (user + system of the runs; 2 CPU cores, "
        "other jobs on the machine slow it down)")
    if report_file:
        with open(report_file, "w", encoding="utf-8") as writer:
            writer.write("\n".join(summary).lstrip() + "\n\nCommands (cwd the repository root):\n\n"
                         + runner.commands_markdown() + "\n")
        print(f"(written to {os.path.relpath(report_file, REPO)})")
