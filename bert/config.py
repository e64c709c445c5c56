"""The config objects a script builds from its flags once, in `main`, and hands to the library.

Nothing in bert/ reads flags: common_flags.py turns the shared flags into a `TrainingConfig`, each
script adds a dataclass of its own, and every function below `main` takes what it needs from them.
"""
import dataclasses
import math
import os
from typing import Optional

from bert import checkpoint, estimator, input_pipeline, modeling, optimization, tokenization
from bert.errors import UserInputError


@dataclasses.dataclass
class TextConfig:
    """How text becomes ids: a WordPiece (or whitespace) vocab, or a SentencePiece model."""
    vocab_file: Optional[str]
    spm_model_file: Optional[str] = None
    tokenizer: str = "wordpiece"  # wordpiece | whitespace (how vocab_file is applied)
    do_lower_case: bool = True

    @property
    def path(self):
        """The vocab or SentencePiece model file (None when neither is known)."""
        return self.spm_model_file or self.vocab_file

    @property
    def kind(self):
        """What model_info.json records: wordpiece, whitespace or sentencepiece."""
        return "sentencepiece" if self.spm_model_file else self.tokenizer

    def create_tokenizer(self, bert_config=None, bert_config_file=None, init_checkpoint=None):
        """The tokenizer; with a BertConfig, checks that every token id fits the model."""
        tokenization.validate_case_matches_checkpoint(self.do_lower_case, init_checkpoint)
        result = tokenization.create_tokenizer(self.vocab_file, self.spm_model_file, self.do_lower_case,
                                               self.tokenizer)
        largest = max(result.vocab.values())
        if bert_config is not None and largest >= bert_config.vocab_size:
            raise UserInputError(f"{self.path} has ids up to {largest} but vocab_size is {bert_config.vocab_size} "
                                 f"in {bert_config_file}: they do not belong together")
        return result

    def cache_identity(self):
        """What about the text pipeline shapes cached features (part of every cache key)."""
        return {"vocab": input_pipeline.file_digest(self.path), "lower": self.do_lower_case,
                "tokenizer": self.tokenizer}


@dataclasses.dataclass
class TrainingConfig:
    """What every training script shares: the model, the text pipeline, batches, optimizer and run."""
    output_dir: str
    bert_config_file: str
    text: TextConfig
    init_checkpoint: Optional[str] = None
    max_seq_length: int = 128
    precision: str = "fp32"  # fp32 | fp16 (dynamic loss scaling) | bf16
    train_batch_size: int = 32
    eval_batch_size: int = 8
    predict_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    seed: int = 12345
    cache_dir: Optional[str] = None  # default: output_dir/cache
    eval_every_steps: int = 0
    pooling: Optional[str] = None  # None: the script's default
    run: estimator.RunSettings = None  # model_dir is output_dir

    def __post_init__(self):
        if self.run is None:
            self.run = estimator.RunSettings(model_dir=self.output_dir)
        if self.cache_dir is None:
            self.cache_dir = os.path.join(self.output_dir, "cache")

    def bert_config(self):
        """The model's BertConfig, checked against max_seq_length."""
        config = modeling.BertConfig.from_json_file(self.bert_config_file)
        if self.max_seq_length > config.max_position_embeddings:
            raise UserInputError(f"--max_seq_length={self.max_seq_length} is above max_position_embeddings "
                                 f"{config.max_position_embeddings} in {self.bert_config_file}")
        if self.max_seq_length < 3:
            raise UserInputError("--max_seq_length must be at least 3 ([CLS], a token, [SEP])")
        if self.init_checkpoint:  # a missing or truncated one is refused before the output folder is touched
            checkpoint.resolve_checkpoint(self.init_checkpoint)
        return config

    def tokenizer(self, bert_config=None):
        return self.text.create_tokenizer(bert_config, self.bert_config_file, self.init_checkpoint)

    def identity(self, bert_config):
        """What about the model and the text pipeline defines a run (model_folder.check_run); the length
        is not part of it (a model trained at one length evaluates at another)."""
        text = self.text
        return {"bert_config": bert_config.to_dict(),
                "vocab": input_pipeline.file_digest(text.path) if text.path else None,
                "tokenizer": text.kind, "do_lower_case": text.do_lower_case}

    def feature_cache(self, **identity):
        """Where cached features go and what (besides the task and examples) keys them."""
        return input_pipeline.FeatureCache(self.cache_dir, dict(identity, **self.text.cache_identity()))

    def optimizer_for_steps(self, steps, warmup_steps=None):
        """OptimizerConfig for `steps` updates, warming up over warmup_proportion of them (or warmup_steps)."""
        return optimization.OptimizerConfig(
            learning_rate=self.learning_rate, num_train_steps=steps,
            num_warmup_steps=int(steps * self.warmup_proportion) if warmup_steps is None else warmup_steps,
            weight_decay_rate=self.weight_decay, gradient_accumulation_steps=self.gradient_accumulation_steps,
            dynamic_loss_scale=self.precision == "fp16")

    def optimizer_for_examples(self, num_examples):
        """OptimizerConfig for num_train_epochs over num_examples at train_batch_size per update."""
        return self.optimizer_for_steps(
            max(int(math.ceil(num_examples * self.num_train_epochs / self.train_batch_size)), 1))

    def micro_batch(self, bert_estimator):
        """(replicas, the batch each replica sees per micro-step): train_batch_size over the estimator's
        replicas and the accumulation steps."""
        strategy = bert_estimator.config.train_distribute
        replicas = strategy.num_replicas_in_sync if strategy else 1
        parts = replicas * self.gradient_accumulation_steps
        if self.train_batch_size % parts:
            raise UserInputError(f"--train_batch_size={self.train_batch_size} is not divisible by {replicas} "
                                 f"replica(s) x {self.gradient_accumulation_steps} accumulation step(s)")
        return replicas, self.train_batch_size // parts
