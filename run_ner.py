"""Named-entity recognition (token classification) in Chinese and English, on the shared model_fn.

  python run_ner.py --do_train --do_eval --data_dir=DATA --data_format=conll \
      --vocab_file=M/vocab.txt --bert_config_file=M/bert_config.json --init_checkpoint=M --output_dir=OUT
  python run_ner.py --do_predict --predict_file=TEXTS.json --output_dir=OUT ...

Data: --train_file / --eval_file / --predict_file, or --data_dir holding the format's train, dev and test
files (conll: train.txt dev.txt test.txt; char_bio: train.txt dev.txt test.txt; cluener and jsonl:
train.json dev.json test.json). --data_format=conll|cluener|char_bio|jsonl, guessed from the content when
absent (the guess is logged); --tag_column picks CoNLL's tag column; --tag_scheme is the scheme the files
use (BIO, IOB1, BIOES, BMES); --model_scheme the one the model learns (entities are converted).
Each word gets one tag, predicted at its first word piece, by a softmax or, with --use_crf, a linear-chain
CRF; sentences longer than --max_seq_length become overlapping windows (--window_stride pieces apart).
Outputs: eval_results.json (entity-level precision, recall, f1 micro and per_type, as seqeval's default
mode), predictions in the input's own format (predictions.<ext>) and as JSONL entity spans with character
offsets (predictions.jsonl), label_map.json, checkpoints; with --eval_every_steps the best by F1 in OUT/best.
"""
import dataclasses
import functools
import os
from typing import Optional

from absl import flags, logging

import common_flags
from bert import estimator, input_pipeline, model_fn, model_folder, ner, tagging, tasks
from bert.errors import UserInputError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_enum("data_format", None, list(ner.FORMATS),
                  "Format of the data files (default: guessed from their content).")
flags.DEFINE_integer("tag_column", -1, "conll: the column holding the tag (negative counts from the end).")
flags.DEFINE_enum("tag_scheme", "BIO", list(ner.SCHEMES), "The tag scheme of the data files.")
flags.DEFINE_enum("model_scheme", "BIO", list(ner.SCHEMES), "The tag scheme the model learns and predicts.")
flags.DEFINE_bool("use_crf", False, "A linear-chain CRF over the words instead of a softmax per word.")
flags.DEFINE_integer("window_stride", None, "Pieces between the starts of a long sentence's windows "
                     "(default: half of max_seq_length).", lower_bound=1)




@dataclasses.dataclass
class NerConfig:
    """What run_ner.py adds to the shared TrainingConfig."""
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    predict_file: Optional[str] = None
    data_dir: Optional[str] = None
    data_format: Optional[str] = None
    tag_column: int = -1
    tag_scheme: str = "BIO"
    model_scheme: str = "BIO"
    use_crf: bool = False
    window_stride: Optional[int] = None
    overwrite_output_dir: bool = False

    def path(self, part):
        """The file of part (train | dev | test): the explicit flag, else data_dir's file for the format."""
        explicit = {"train": self.train_file, "dev": self.eval_file, "test": self.predict_file}[part]
        if explicit or not self.data_dir:
            return explicit
        if self.data_format and self.data_format not in ner.DATA_EXTENSIONS:
            raise UserInputError(f"--data_format={self.data_format}: give the files (--train_file, --eval_file, "
                                 "--predict_file), not --data_dir")
        extensions = ner.DATA_EXTENSIONS[self.data_format] if self.data_format else sorted(
            set(sum(ner.DATA_EXTENSIONS.values(), [])))
        names = [part + extension for extension in extensions]
        for name in names:
            if os.path.exists(os.path.join(self.data_dir, name)):
                return os.path.join(self.data_dir, name)
        raise UserInputError(f"{self.data_dir}: no {' or '.join(names)} (or give the file with its flag)")


class NerData:
    """A data file's sentences and their words' tags in the model's scheme."""

    def __init__(self, run, part, data_format=None):
        """data_format: the training data's, when --data_format is not given (then nothing is guessed)."""
        self.path = run.path(part)
        if not self.path:
            raise UserInputError(f"no {part} data: give --data_dir or its file flag")
        self.sentences, self.format = ner.read_ner_file(self.path, run.data_format or data_format, run.tag_column,
                                                        run.tag_scheme)
        self.scheme = run.model_scheme

    @functools.cached_property
    def word_tags(self):
        """Per sentence, each word's tag in the model's scheme (from the entities; computed once, so a
        nested entity's warning is logged once)."""
        return [ner.sentence_tags(s, self.scheme) for s in self.sentences]

    def examples(self, with_tags):
        tags = self.word_tags if with_tags else [None] * len(self.sentences)
        return [tagging.TaggedWords(list(s.words), t) for s, t in zip(self.sentences, tags)]


def predict_tags(bert_estimator, task, cache, data, name, setup, checkpoint=None):
    """Each sentence's predicted tags (model scheme), windows merged."""
    arrays = cache.arrays(task, data.examples(with_tags=False), name)
    predictions = list(bert_estimator.predict(input_pipeline.array_input_fn_builder(arrays, setup.predict_batch_size),
                                              checkpoint_path=checkpoint, yield_single_examples=False))
    merged = {key: [row for batch in predictions for row in batch[key]] for key in predictions[0]} if predictions \
        else {key: [] for key in ("example_index", "first_word", "word_count", "word_tags", "word_is_max_context")}
    return task.merge([len(s.words) for s in data.sentences], merged)


def score(task, data, predicted):
    return task.scorer(data.scheme).score(data.word_tags, predicted)


def main(argv):
    del argv
    common_flags.reject_tpu()
    common_flags.quiet_tensorflow()
    common_flags.require("bert_config_file", "output_dir")
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise UserInputError("nothing to do: pass at least one of --do_train, --do_eval, --do_predict")
    setup = common_flags.training_config()
    run = NerConfig(train_file=FLAGS.train_file, eval_file=FLAGS.eval_file, predict_file=FLAGS.predict_file,
                    data_dir=FLAGS.data_dir, data_format=FLAGS.data_format, tag_column=FLAGS.tag_column,
                    tag_scheme=FLAGS.tag_scheme, model_scheme=FLAGS.model_scheme, use_crf=FLAGS.use_crf,
                    window_stride=FLAGS.window_stride, overwrite_output_dir=FLAGS.overwrite_output_dir)
    tag(setup, run, FLAGS.do_train, FLAGS.do_eval, FLAGS.do_predict)


def tag(setup, run, do_train, do_eval, do_predict):
    bert_config = setup.bert_config()
    tokenizer = setup.tokenizer(bert_config)
    model_folder.claim(setup.output_dir, run.overwrite_output_dir, exclusive=estimator.is_chief())
    trained_format = None
    if not do_train:  # a trained folder says how it tags: CRF or not, the scheme, its data's format
        recorded = model_folder.ModelInfo.from_dir(setup.output_dir).extra
        run = dataclasses.replace(run, use_crf=recorded.get("use_crf", run.use_crf),
                                  model_scheme=recorded.get("model_scheme", run.model_scheme),
                                  window_stride=run.window_stride or recorded.get("stride"))
        trained_format = recorded.get("data_format")
    train = NerData(run, "train") if do_train else None
    trained_format = train.format if train else trained_format
    dev = NerData(run, "dev", trained_format) if do_eval else None
    test = NerData(run, "test", trained_format) if do_predict else None  # read (and checked) before training
    identity = dict(setup.identity(bert_config), task=tasks.TokenClassificationTask.name, use_crf=run.use_crf,
                    model_scheme=run.model_scheme)
    if train:
        labels = tagging.tag_list(train.word_tags)
        identity["training_data"] = input_pipeline.data_digest(train.examples(with_tags=True))
    else:
        labels, _ = model_folder.load_label_map(setup.output_dir)
    model_folder.check_run(setup.output_dir, dict(identity, labels=labels), record=do_train and estimator.is_chief())
    task = tasks.TokenClassificationTask(labels, tokenizer, setup.max_seq_length, run.use_crf, run.window_stride)
    cache = setup.feature_cache(processor=f"ner-{train.format if train else 'data'}")
    if dev is not None:
        unknown = sorted({t for tags in dev.word_tags for t in tags} - set(labels))
        if unknown:
            logging.warning("%s: tags the training data never had (counted as misses): %s", dev.path, unknown[:10])

    optimizer_config, hooks = None, ()
    if do_train:
        model_folder.save_model_info(setup, task, model_scheme=run.model_scheme, data_format=train.format)
        model_folder.save_label_map(labels, setup.output_dir)
        train_path, train_count = cache.features(task, train.examples(with_tags=True), "train", training=True)
        optimizer_config = setup.optimizer_for_examples(train_count)
        total = optimizer_config.num_train_steps
        hooks = [lambda loss: estimator.ProgressHook(loss, total, setup.train_batch_size, every=max(total // 20, 1))]
    bert_estimator = estimator.build_estimator(
        model_fn.model_fn_builder(task, bert_config, setup.init_checkpoint, optimizer_config, setup.precision,
                                  training_hooks=hooks), setup.run)
    if do_train:
        _, micro_batch = setup.micro_batch(bert_estimator)
        logging.info("training on %d sentences (%d windows): %d steps", len(train.sentences), train_count, total)
        validation = None
        if dev is not None and setup.eval_every_steps:
            validation = estimator.Validation(
                setup.eval_every_steps,
                lambda checkpoint: score(task, dev,
                                         predict_tags(bert_estimator, task, cache, dev, "dev", setup, checkpoint)),
                "f1", model_folder.best_dir(setup.output_dir), label="dev entity F1",
                data=input_pipeline.data_digest(dev.examples(with_tags=True)))
        estimator.train(bert_estimator, input_pipeline.tfrecord_input_fn_builder(
            train_path, task.feature_spec(True), micro_batch, is_training=True, drop_remainder=True,
            seed=setup.seed), total, validation)
        if not estimator.is_chief():
            return
    checkpoint = model_folder.best_checkpoint(setup.output_dir)
    if do_eval:
        report = score(task, dev, predict_tags(bert_estimator, task, cache, dev, "dev", setup, checkpoint))
        model_folder.write_eval_results(setup.output_dir, report)
        print(f"\n{dev.path}: entity precision {report['precision']:.4f}, recall {report['recall']:.4f}, "
              f"F1 {report['f1']:.4f}")
    if do_predict:
        predicted = predict_tags(bert_estimator, task, cache, test, "test", setup, checkpoint)
        extension = os.path.splitext(test.path)[1] or ".txt"
        ner.write_like_input(os.path.join(setup.output_dir, "predictions" + extension), test.sentences, predicted,
                             test.format, run.model_scheme)
        ner.write_jsonl(os.path.join(setup.output_dir, "predictions.jsonl"), test.sentences,
                        [ner.tags_to_char_entities(s, tags, run.model_scheme) for s, tags in zip(test.sentences,
                                                                                                  predicted)])
        print(f"wrote {os.path.join(setup.output_dir, 'predictions' + extension)} and predictions.jsonl")


if __name__ == "__main__":
    run_main(main)
