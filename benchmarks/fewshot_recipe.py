"""Few-shot recipe search: a small grid of meta-training and adaptation settings, each chosen by accuracy on
*validation* classes only, and the chosen recipe printed as run_fewshot.py flags.

  .venv/bin/python benchmarks/fewshot_recipe.py --data_file=OUT/csldcp.tsv --class_split_file=SPLIT.json \
      --output_dir=output/recipe-csldcp -- --bert_config_file=M/bert_config.json --vocab_file=M/vocab.txt \
      --init_checkpoint=M --max_seq_length=64 --do_lower_case=false

The class split file (train_classes, val_classes, test_classes: what run_fewshot.py writes to
class_split.json) must have validation classes. Every run below sees the training classes for training
and the validation classes for everything else; the test classes are never read.

Stage 1, training: one run_fewshot.py --do_train --do_eval per combination of --learning_rates,
--train_shapes (n_way/k_shot, each a number or a range LOW:HIGH) and --train_episodes (the grid chooses how
long to train: no checkpoint is chosen inside a run), scoring --settings on the validation classes, which
play the evaluation classes' part (--val_episodes episodes each). The untrained encoder ("frozen") is a candidate too. Score: the mean
accuracy over --settings.
Stage 2, adaptation: on the stage-1 winner, one run_fewshot.py --do_eval per combination of --adapt_steps,
--adapt_learning_rates, --adapt_layers (0 steps: none) and, for adapted layers, --adapt_layer_learning_rates,
scored the same way.
Runs go to OUTPUT_DIR/<candidate>; the table of every candidate and the chosen flags are printed and
written to OUTPUT_DIR/report.md.
"""
import argparse
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fewshot_common as common  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=common.default_python())
    parser.add_argument("--data_file", required=True, help="text<TAB>label lines of every class")
    parser.add_argument("--class_split_file", required=True, help="JSON with train/val/test class lists")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--settings", default="5w1s,5w5s", help="validation settings, scored by their mean")
    parser.add_argument("--val_episodes", type=int, default=300)
    parser.add_argument("--eval_q_query", type=int, default=15)
    parser.add_argument("--learning_rates", default="1e-5,3e-5")
    parser.add_argument("--train_shapes", default="5/2,5:10/1:10", help="n_way/k_shot pairs, comma-separated")
    parser.add_argument("--q_query", type=int, default=5)
    parser.add_argument("--train_episodes", default="200")
    parser.add_argument("--adapt_steps", default="0,10,30")
    parser.add_argument("--adapt_learning_rates", default="1e-3,1e-2")
    parser.add_argument("--adapt_layers", default="0")
    parser.add_argument("--adapt_layer_learning_rates", default="",
                        help="learning rates of the adapted layers (adapt_layers > 0); empty: the head's")
    parser.add_argument("extra", nargs="*", help="run_fewshot.py flags of every run (model, text), after --")
    return parser.parse_args()


def numbers(text, kind=float):
    return [kind(x) for x in text.split(",") if x]


def score(results, row, settings):
    by_setting = results["rows"][row]
    return sum(by_setting[s]["accuracy"] for s in settings) / len(settings), by_setting


def main():
    args = parse_args()
    settings = args.settings.split(",")
    split = json.load(open(args.class_split_file, encoding="utf-8"))
    if not split.get("val_classes"):
        sys.exit(f"{args.class_split_file}: no val_classes: the recipe is chosen on validation classes only")
    os.makedirs(args.output_dir, exist_ok=True)
    # Validation classes play the evaluation classes' part; the test classes are left out of every run.
    val_split = os.path.join(args.output_dir, "validation_split.json")
    with open(val_split, "w", encoding="utf-8") as writer:
        json.dump({"train_classes": split["train_classes"], "val_classes": [], "test_classes": split["val_classes"]},
                  writer, indent=2)
    runner = common.make_runner(args.python)
    common_flags = [f"--data_file={args.data_file}", f"--class_split_file={val_split}",
                    f"--eval_settings={args.settings}", f"--eval_episodes={args.val_episodes}",
                    f"--eval_q_query={args.eval_q_query}"] + args.extra
    candidates = []  # (score, name, by_setting, flags, folder)

    def run(name, flags):
        folder = common.fresh_dir(os.path.join(args.output_dir, name))
        return common.run_fewshot(runner, name, flags + common_flags, folder), folder

    shapes = [shape.split("/") for shape in args.train_shapes.split(",") if shape]
    grid = itertools.product(numbers(args.learning_rates), shapes, numbers(args.train_episodes, int))
    for index, (learning_rate, (n_way, k_shot), episodes) in enumerate(grid):
        flags = [f"--learning_rate={learning_rate:g}", f"--n_way={n_way}", f"--k_shot={k_shot}",
                 f"--q_query={args.q_query}", f"--train_episodes={episodes}"]
        results, folder = run(f"train-{index}", ["--do_train", "--do_eval", f"--eval_frozen={index == 0}"] + flags)
        if index == 0:
            untrained = next(name for name in results["rows"] if name != "meta-trained")
            candidates.append(score(results, untrained, settings) + (untrained, [], None))
        candidates.append(score(results, "meta-trained", settings) + (f"meta-trained {' '.join(flags)}", flags,
                                                                      folder))
    best = max(candidates, key=lambda c: c[0])
    _, _, _, train_flags, train_folder = best
    layer_rates = numbers(args.adapt_layer_learning_rates) or [None]
    adapt_grid = itertools.product(numbers(args.adapt_steps, int), numbers(args.adapt_learning_rates),
                                   numbers(args.adapt_layers, int), layer_rates)
    adapted = []
    for index, (steps, learning_rate, layers, layer_rate) in enumerate(adapt_grid):
        if steps == 0 or (layers == 0 and layer_rate != layer_rates[0]):
            continue  # no adaptation; a layer learning rate without layers (the first one stands for all)
        flags = [f"--adapt_steps={steps}", f"--adapt_learning_rate={learning_rate:g}", f"--adapt_layers={layers}"]
        flags += [f"--adapt_layer_learning_rate={layer_rate:g}"] if layers and layer_rate else []
        if train_folder:  # evaluate the trained folder again (the same run), with adaptation
            runner.run(f"adapt-{index}", "run_fewshot.py", ["--do_eval", "--eval_frozen=false"] + train_flags + flags
                       + common_flags + [f"--output_dir={train_folder}"],
                       os.path.join(train_folder, f"adapt-{index}.log"))
            results = json.load(open(os.path.join(train_folder, "fewshot_results.json"), encoding="utf-8"))
        else:
            results, _ = run(f"adapt-{index}", ["--do_eval"] + flags)
        row = next(name for name in results["rows"] if name.endswith("+ adaptation"))
        adapted.append(score(results, row, settings) + (f"{best[2]} + {' '.join(flags)}", train_flags + flags,
                                                        train_folder))
    chosen = max(candidates + adapted, key=lambda c: c[0])
    lines = ["| candidate (validation classes) | " + " | ".join(settings) + " | mean |",
             "| --- |" + " ---: |" * (len(settings) + 1)]
    for mean, by_setting, name, _, _ in candidates + adapted:
        lines.append(f"| {name} | " + " | ".join(common.cell(by_setting[s]) for s in settings)
                     + f" | {100 * mean:.2f} |")
    text = ("\n".join(lines) + f"\n\nchosen on {len(split['val_classes'])} validation classes ({args.settings}, "
            f"{args.val_episodes} episodes each): {chosen[2]}\n\nrun_fewshot.py flags: "
            + (" ".join(chosen[3]) or "none (the untrained encoder, no adaptation)") + "\n")
    print("\n" + text)
    runner.print_commands()
    with open(os.path.join(args.output_dir, "report.md"), "w", encoding="utf-8") as writer:
        writer.write(text + "\nCommands (cwd the repository root):\n\n" + runner.commands_markdown() + "\n")


if __name__ == "__main__":
    main()
