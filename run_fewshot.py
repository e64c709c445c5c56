"""Few-shot text classification with prototypical networks on BERT sentence embeddings.

Meta-train on episodes (N classes, K support + Q query sentences each) from the classes that have
data, then classify sentences into new classes from a handful of examples, without retraining.

  python run_fewshot.py --do_train --do_eval --data_file=intents.tsv --test_class_ratio=0.3 \
      --bert_config_file=M/bert_config.json --vocab_file=M/vocab.txt --init_checkpoint=M --output_dir=OUT
  python run_fewshot.py --do_predict --support_file=support.tsv --predict_file=texts.txt ... --output_dir=OUT

Data: `text<TAB>label` lines. --data_file with all classes is split into meta-train / (val) / test
*classes* (--test_class_ratio, --val_class_ratio, --split_seed, or --class_split_file naming them);
or --train_file / --eval_file (/ --val_file) with different classes; or --task_name/--data_dir for
any registered processor (its train and dev examples pooled, then split by class).
Outputs: class_split.json, fewshot_results.json (+ the table printed and in fewshot_results.md),
predictions.tsv (label, probability, distance to each prototype), checkpoints (best by validation
accuracy in OUT/best when there are validation classes).
"""
import dataclasses
import json
import os
from typing import Optional

from absl import flags, logging

import common_flags
import processors
from bert import estimator, fewshot, files, input_pipeline, model_folder, plots, tasks
from bert.errors import UserInputError, run_main
from bert.heads import DISTANCES

FLAGS = flags.FLAGS
flags.DEFINE_string("data_file", None, "text<TAB>label lines, all classes; split into class sets.")
common_flags.define_float("test_class_ratio", 0.3, "With --data_file: share of classes held out for evaluation.",
                          low=0, high=1, above=True)
common_flags.define_float("val_class_ratio", 0.0, "With --data_file: share of classes for choosing the checkpoint.",
                          low=0, high=1)
flags.DEFINE_integer("split_seed", 12345, "Seed of the class split.", lower_bound=0, upper_bound=2**32 - 1)
flags.DEFINE_string("class_split_file", None, "JSON with train_classes, val_classes, test_classes lists.")
flags.DEFINE_string("val_file", None, "text<TAB>label lines of validation classes (checkpoint choice).")
flags.DEFINE_string("n_way", "5:10", "Training episodes: classes per episode, or a range LOW:HIGH each episode draws "
                    "its own from. The default (chosen on csldcp's validation disciplines) is narrowed to the "
                    "meta-training classes there are.")
flags.DEFINE_string("k_shot", "1:10", "Training episodes: support sentences per class, or a range LOW:HIGH. The "
                    "default is narrowed to the smallest meta-training class (minus --q_query).")
for _name, _low in (("n_way", 2), ("k_shot", 1)):
    flags.register_validator(_name, lambda text, low=_low: _is_range(text, low),
                             message=f"expected a number or LOW:HIGH with {_low} <= LOW <= HIGH")
flags.DEFINE_integer("q_query", 5, "Training episodes: query sentences per class.", lower_bound=1)
flags.DEFINE_integer("train_episodes", 1000, "Training steps; each step is one episode per replica.", lower_bound=1)
flags.DEFINE_enum("distance", "auto", ["auto"] + list(DISTANCES),
                  "Prototype distance; cosine has a learnable scale. auto: what the model was trained for (see "
                  "--pooling), else euclidean.")
flags.DEFINE_list("eval_settings", ["5w1s", "5w5s", "10w1s", "10w5s"], "Evaluation settings, <N>w<K>s.")
flags.DEFINE_integer("eval_episodes", 1000, "Episodes per evaluation setting.", lower_bound=1)
flags.DEFINE_integer("eval_q_query", 15, "Query sentences per class in evaluation episodes.", lower_bound=1)
flags.DEFINE_integer("eval_seed", 2024, "Seed of the evaluation episodes (the same for every row).",
                     lower_bound=0, upper_bound=2**32 - 1)
flags.DEFINE_integer("val_episodes", 300, "Episodes per validation (first eval setting).", lower_bound=1)
flags.DEFINE_bool("eval_frozen", True, "Also evaluate the init checkpoint without meta-training.")
flags.DEFINE_enum("baseline", "none", ["none", "finetune"], "Also fine-tune BERT on each episode's support set.")
flags.DEFINE_integer("baseline_episodes", 50, "Episodes per setting for the fine-tuning baseline.", lower_bound=1)
flags.DEFINE_integer("baseline_steps", 30, "Fine-tuning steps on each support set.", lower_bound=1)
common_flags.define_float("baseline_learning_rate", 5e-5, "Fine-tuning baseline learning rate.", low=0, above=True)


def _is_range(text, low):
    try:
        fewshot.parse_range(text, low, "")
        return True
    except UserInputError:
        return False


@dataclasses.dataclass
class DataConfig:
    """Where the few-shot data comes from and how its classes are split."""
    data_file: Optional[str] = None
    test_class_ratio: float = 0.3
    val_class_ratio: float = 0.0
    split_seed: int = 12345
    class_split_file: Optional[str] = None
    train_file: Optional[str] = None
    val_file: Optional[str] = None
    eval_file: Optional[str] = None
    task_name: Optional[str] = None
    data_dir: Optional[str] = None
    processor_module: Optional[str] = None


def load_splits(data):
    """{"train": [...], "val": [...], "test": [...]} examples with disjoint classes, and the split."""
    if data.train_file or data.eval_file:
        parts = {"train": data.train_file, "val": data.val_file, "test": data.eval_file}
        examples = {name: processors.read_text_label_file(path, name) if path else [] for name, path in parts.items()}
        classes = {name: sorted({e.label for e in items}) for name, items in examples.items()}
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            shared = sorted(set(classes[a]) & set(classes[b]))
            if shared:
                raise UserInputError(f"the {a} and {b} files share classes {shared[:10]}: few-shot evaluation "
                                     "needs classes never seen in training")
        return examples, {f"{name}_classes": classes[name] for name in parts}
    if data.data_file:
        pooled = processors.read_text_label_file(data.data_file)
    elif data.task_name:
        if data.processor_module:
            processors.import_processor_module(data.processor_module)
        processor = processors.get_processor(data.task_name)
        pooled = processor.get_train_examples(data.data_dir) + processor.get_dev_examples(data.data_dir)
    else:
        raise UserInputError("give the data: --data_file, or --train_file/--eval_file, or --task_name/--data_dir")
    present = sorted({e.label for e in pooled})
    if data.class_split_file:
        named = files.read_json(data.class_split_file, "class split file", expect=dict)
        parts = ("train_classes", "val_classes", "test_classes")
        for part in parts:
            if not (isinstance(named.get(part, []), list) and all(isinstance(c, str) for c in named.get(part, []))):
                raise UserInputError(f"{data.class_split_file}: \"{part}\" must be a list of class names")
        split = {part: sorted(named.get(part, [])) for part in parts}
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            shared = sorted(set(split[f"{a}_classes"]) & set(split[f"{b}_classes"]))
            if shared:
                raise UserInputError(f"{data.class_split_file}: {a} and {b} classes overlap: {shared[:10]}")
        unknown = sorted(set(sum(split.values(), [])) - set(present))
        if unknown:
            raise UserInputError(f"{data.class_split_file}: classes not in the data: {unknown[:10]}")
    else:
        split = fewshot.split_classes(present, data.test_class_ratio, data.val_class_ratio, data.split_seed)
    membership = {c: name for name in ("train", "val", "test") for c in split[f"{name}_classes"]}
    examples = {name: [e for e in pooled if membership.get(e.label) == name] for name in ("train", "val", "test")}
    return examples, split


def train_and_evaluate(setup, episodes, data, bert_config, tokenizer, do_train, do_eval, run):
    """Meta-training and/or the evaluation table; writes class_split.json and fewshot_results.json/.md/.png.
    run: what defines the run so far (model_folder.check_run); the class split and training data join it."""
    examples, split = load_splits(data)
    run = dict(run, class_split={part: classes for part, classes in split.items() if classes})
    if examples["train"]:
        run["training_data"] = input_pipeline.data_digest(examples["train"])
    model_folder.check_run(setup.output_dir, run, record=do_train and estimator.is_chief())
    files.write_text_atomic(os.path.join(setup.output_dir, "class_split.json"), json.dumps(split, indent=2) + "\n")
    labels = sorted(set(sum(split.values(), [])))
    task = tasks.FewShotTask(labels, tokenizer, setup.max_seq_length, setup.pooling, episodes.distance)
    cache = setup.feature_cache()
    arrays = {name: cache.arrays(task, items, f"fewshot-{name}") for name, items in examples.items() if items}

    def class_rows(name):
        ids = [task.label_to_id[c] for c in split[f"{name}_classes"]]
        return fewshot.rows_by_class(arrays[name]["label_ids"], ids) if name in arrays else {}

    results = {}
    if do_train:
        model_folder.save_model_info(setup, task)
        if "train" not in arrays:
            raise UserInputError("no meta-training classes: check the class split or --train_file")
        episodes = fewshot.fit_episode_shapes(episodes, class_rows("train"))
        rows, message = fewshot.keep_classes_with(class_rows("train"), episodes.k_shot[1] + episodes.q_query,
                                                  episodes.n_way[1], labels, "meta-training")
        if message:
            logging.warning(message)
        val = None
        if "val" in arrays:
            n_way, k_shot = fewshot.parse_setting(episodes.eval_settings[0])
            val_rows, _ = fewshot.keep_classes_with(class_rows("val"), k_shot + episodes.eval_q_query, n_way,
                                                    labels, "validation")
            val = (arrays["val"], val_rows)
        results["training"] = fewshot.meta_train(task, setup, bert_config, episodes, arrays["train"], rows, val)
    if do_eval:
        if "test" not in arrays:
            raise UserInputError("no evaluation classes: check the class split or --eval_file")
        rows = fewshot.evaluate(task, setup, bert_config, episodes, arrays["test"], class_rows("test"), labels)
        main_row = rows.get("meta-trained") or next(iter(rows.values()))
        results.update({setting: main_row[setting] for setting in episodes.eval_settings})
        results["rows"] = rows
        text = fewshot.table(rows, episodes.eval_settings)
        files.write_text_atomic(os.path.join(setup.output_dir, "fewshot_results.md"), text)
        plots.write_fewshot_plot(os.path.join(setup.output_dir, "fewshot_results.png"), rows,
                                 held_out_classes=len(split["test_classes"]))
        print(f"\nfew-shot accuracy (%) on {len(split['test_classes'])} held-out classes, "
              f"{episodes.eval_q_query} queries per class, mean ± 95% interval:\n\n{text}")
    files.write_text_atomic(os.path.join(setup.output_dir, "fewshot_results.json"),
                            json.dumps(results, indent=2) + "\n")


def predict(setup, episodes, bert_config, tokenizer, support_file, predict_file):
    """Classifies predict_file's texts into support_file's classes; writes predictions.tsv and shows them."""
    support = processors.read_text_label_file(support_file, "support")
    support_classes = sorted({e.label for e in support})
    if len(support_classes) == 1:
        logging.warning("%s: the support set has one class (%r): every text will get it with probability 1; "
                        "give examples of two classes or more", support_file, support_classes[0])
    queries = processors.read_text_lines(predict_file)
    classified = fewshot.classify(
        lambda classes: tasks.FewShotTask(classes, tokenizer, setup.max_seq_length, setup.pooling, episodes.distance),
        setup, bert_config, setup.feature_cache(), support, queries, episodes.adapt)
    classes = classified.classes
    best = classified.probabilities.argmax(-1)  # [queries]
    rows = [(example.text_a, classes[b], probabilities[b], distances) for example, b, probabilities, distances
            in zip(queries, best, classified.probabilities, classified.distances)]
    path = os.path.join(setup.output_dir, "predictions.tsv")
    files.write_tsv(path, ["text", "label", "probability"] + [f"distance:{c}" for c in classes],
                    ([text, label, f"{probability:.4f}"] + [f"{d:.4f}" for d in distances]
                     for text, label, probability, distances in rows))
    source = classified.checkpoint or f"{setup.init_checkpoint or 'a random init'} (not meta-trained)"
    if episodes.adapt.enabled:
        source += f", adapted to the support set ({episodes.adapt.describe()})"
    print(f"\n{len(queries)} texts into {len(classes)} classes from {len(support)} examples, using {source}:\n")
    for text, label, probability, _ in rows:  # escaped as in the file: one line per text
        print(f"  {files.escape_tsv_field(label):<14} {probability:.2f}  {files.escape_tsv_field(text)}")
    print(f"\nwrote {path}")


def main(argv):
    del argv
    common_flags.quiet_tensorflow()
    common_flags.reject_tpu()
    common_flags.require("bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass at least one of --do_train, --do_eval, --do_predict")
    if FLAGS.do_predict and not (FLAGS.support_file and FLAGS.predict_file):
        raise UserInputError("--do_predict needs --support_file and --predict_file")
    setup = common_flags.training_config()
    # A trained output_dir keeps its own pooling and distance, unless it is to be overwritten.
    defaults, origin = model_folder.embedding_defaults(None if FLAGS.overwrite_output_dir else setup.output_dir,
                                                       setup.init_checkpoint)
    chosen = {"pooling": FLAGS.pooling, "distance": FLAGS.distance}
    for key, value in chosen.items():
        if value in (None, "auto"):
            chosen[key] = defaults[key]
            logging.info("%s %s (auto: from %s)", key, chosen[key], origin[key])
    setup = dataclasses.replace(setup, pooling=chosen["pooling"])
    episodes = fewshot.FewShotConfig(
        n_way=fewshot.parse_range(FLAGS.n_way, 2, "--n_way"), k_shot=fewshot.parse_range(FLAGS.k_shot, 1, "--k_shot"),
        q_query=FLAGS.q_query, train_episodes=FLAGS.train_episodes,
        distance=chosen["distance"], eval_settings=list(FLAGS.eval_settings), eval_episodes=FLAGS.eval_episodes,
        eval_q_query=FLAGS.eval_q_query, eval_seed=FLAGS.eval_seed, val_episodes=FLAGS.val_episodes,
        eval_frozen=FLAGS.eval_frozen, baseline=FLAGS.baseline, baseline_episodes=FLAGS.baseline_episodes,
        baseline_steps=FLAGS.baseline_steps, baseline_learning_rate=FLAGS.baseline_learning_rate,
        adapt=common_flags.adapt_config(), fit_n_way=not FLAGS["n_way"].present,
        fit_k_shot=not FLAGS["k_shot"].present)
    data = DataConfig(
        data_file=FLAGS.data_file, test_class_ratio=FLAGS.test_class_ratio, val_class_ratio=FLAGS.val_class_ratio,
        split_seed=FLAGS.split_seed, class_split_file=FLAGS.class_split_file, train_file=FLAGS.train_file,
        val_file=FLAGS.val_file, eval_file=FLAGS.eval_file, task_name=FLAGS.task_name, data_dir=FLAGS.data_dir,
        processor_module=FLAGS.processor_module)
    bert_config = setup.bert_config()
    episodes.adapt.check(bert_config)
    tokenizer = setup.tokenizer(bert_config)
    model_folder.claim(setup.output_dir, FLAGS.overwrite_output_dir, exclusive=estimator.is_chief())
    run = dict(setup.identity(bert_config), task=tasks.FewShotTask.name, pooling=setup.pooling,
               distance=episodes.distance)
    model_folder.check_run(setup.output_dir, run, record=False)
    if FLAGS.do_train or FLAGS.do_eval:
        train_and_evaluate(setup, episodes, data, bert_config, tokenizer, FLAGS.do_train, FLAGS.do_eval, run)
    if FLAGS.do_predict:
        predict(setup, episodes, bert_config, tokenizer, FLAGS.support_file, FLAGS.predict_file)


if __name__ == "__main__":
    run_main(main)
