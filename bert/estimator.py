"""Estimator construction (distribution strategy, XLA, checkpoints), a progress line, and training
with evaluation every N steps keeping the best checkpoint (`train`, `Validation`)."""
import dataclasses
import json
import os
import time
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from bert import checkpoint, model_folder
from bert.errors import UserInputError

tf1 = tf.compat.v1
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


@dataclasses.dataclass
class RunSettings:
    model_dir: str
    distribution: str = "none"  # none | mirrored (local devices) | multi_worker (from TF_CONFIG)
    num_gpus: int = 0  # mirrored: GPUs to use (0: every visible GPU, or the CPU devices below)
    cpu_devices: int = 1  # logical CPU devices in the session (2 lets tests mirror over CPUs)
    use_xla: bool = False
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    log_step_count_steps: int = 100
    seed: Optional[int] = None


def make_strategy(settings):
    """The tf.distribute strategy for settings.distribution (None for "none")."""
    if settings.distribution == "none":
        return None
    if settings.distribution == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            count = settings.num_gpus or len(gpus)
            if count > len(gpus):
                raise UserInputError(f"--num_gpus={count} but only {len(gpus)} GPUs are visible")
            devices = [f"/gpu:{i}" for i in range(count)]
        else:
            devices = [f"/cpu:{i}" for i in range(settings.cpu_devices)]
        # Built in a graph: in eager mode the constructor would place tensors on every device, and
        # the eager runtime has one CPU (device_count reaches only the Estimator's session).
        with tf.Graph().as_default():
            return tf.distribute.MirroredStrategy(devices=devices)
    if settings.distribution == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserInputError("--distribution=multi_worker needs the TF_CONFIG environment variable "
                                 "(cluster and task) on every worker")
        return tf.distribute.experimental.MultiWorkerMirroredStrategy()
    raise UserInputError(f"--distribution must be one of {DISTRIBUTIONS}, got {settings.distribution!r}")


def is_chief():
    """Whether this process is the chief of a TF_CONFIG cluster (True without TF_CONFIG).

    The chief is the "chief" task, or worker 0 when the cluster names no chief. (With a multi-worker
    strategy, Estimator's own RunConfig.is_chief is True in every process.)
    """
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config.get("cluster", {})


def num_workers():
    """Machines in the TF_CONFIG cluster (chief and workers); 1 without TF_CONFIG."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return max(len(cluster.get("chief", [])) + len(cluster.get("worker", [])), 1)


def session_config(settings):
    config = tf1.ConfigProto(device_count={"CPU": settings.cpu_devices}, allow_soft_placement=True)
    if settings.use_xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def build_estimator(model_fn, settings):
    strategy = make_strategy(settings)
    run_config = tf.estimator.RunConfig(
        model_dir=settings.model_dir, tf_random_seed=settings.seed,
        save_checkpoints_steps=settings.save_checkpoints_steps,
        keep_checkpoint_max=settings.keep_checkpoint_max,
        log_step_count_steps=settings.log_step_count_steps,
        session_config=session_config(settings),
        train_distribute=strategy)
    return tf.estimator.Estimator(model_fn=model_fn, config=run_config)


class ProgressHook(tf1.train.SessionRunHook):
    """Logs `step 120/500  loss 0.4312  85.3 examples/s  1m23s left` every `every` steps."""

    def __init__(self, loss, total_steps, examples_per_step, every=100):
        self.loss = loss
        self.total_steps = total_steps
        self.examples_per_step = examples_per_step
        self.every = max(int(every), 1)

    def begin(self):
        self.global_step = tf1.train.get_global_step()
        self.last = None

    def before_run(self, run_context):
        return tf1.train.SessionRunArgs([self.global_step, self.loss])

    def after_run(self, run_context, run_values):
        step, loss = run_values.results
        now = time.time()
        if self.last is None:
            self.last = (step, now)
            return
        if step - self.last[0] < self.every and step < self.total_steps:
            return
        steps, seconds = step - self.last[0], now - self.last[1]
        rate = steps / seconds if seconds > 0 else 0.0
        left = (self.total_steps - step) / rate if rate > 0 else 0.0
        logging.info("step %d/%d  loss %.4f  %.1f examples/s  %dm%02ds left", step, self.total_steps, loss,
                     rate * self.examples_per_step, left // 60, left % 60)
        self.last = (step, now)


@dataclasses.dataclass
class Validation:
    """Evaluate every `every` steps while training and keep the best checkpoint in `best_dir`.

    evaluate(checkpoint path) -> a report dict holding `metric`; `label` names it in the log and in
    best_dir's best_eval.json. lower_is_better for losses. patience: stop after this many
    evaluations without improvement (0: never). data: a digest of the evaluation data; a best/ scored
    on other data is not the score to beat. input_fn, steps: the evaluation as an input_fn, for
    multi-worker training (train_and_evaluate).
    """
    every: int
    evaluate: Callable[[str], dict]
    metric: str
    best_dir: str
    label: Optional[str] = None
    lower_is_better: bool = False
    patience: int = 0
    data: Optional[str] = None
    input_fn: Optional[Callable] = None
    steps: Optional[int] = None


def train(bert_estimator, input_fn, total_steps, validation=None):
    """Trains to total_steps; with a Validation, evaluates on the way and keeps the best checkpoint.

    Training resumes from the newest whole checkpoint in the estimator's model_dir. The best value kept
    in best_dir by an earlier run (resumed, continued or rerun) on the same evaluation data is the one
    to beat. Multi-worker training runs through train_and_evaluate (the only way Estimator runs it;
    only the chief keeps checkpoints). Returns the seconds spent training (evaluation excluded).
    """
    if is_chief():
        model_folder.resume_from_a_whole_checkpoint(bert_estimator.model_dir)
    start = time.time()
    strategy = bert_estimator.config.train_distribute
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        evaluation = (validation.input_fn, validation.steps) if validation and validation.input_fn else (input_fn, 1)
        tf.estimator.train_and_evaluate(
            bert_estimator, tf.estimator.TrainSpec(input_fn, max_steps=total_steps),
            tf.estimator.EvalSpec(evaluation[0], steps=evaluation[1], throttle_secs=0))
        return time.time() - start
    if validation is None or not validation.every:
        bert_estimator.train(input_fn, max_steps=total_steps)
        return time.time() - start
    label = validation.label or validation.metric
    best, stale, trained = model_folder.best_value(validation.best_dir, label, validation.data), 0, 0.0
    if best is not None:
        logging.info("best so far: %s %.4f (%s)", label, best, validation.best_dir)
    latest = bert_estimator.latest_checkpoint()
    done = checkpoint.checkpoint_step(latest) if latest else 0  # a resumed run evaluates from here on
    first = (done // validation.every + 1) * validation.every
    for target in range(min(first, total_steps), total_steps + validation.every, validation.every):
        start = time.time()
        bert_estimator.train(input_fn, max_steps=min(target, total_steps))
        trained += time.time() - start
        path = bert_estimator.latest_checkpoint()
        report = validation.evaluate(path)
        if validation.metric not in report:
            raise UserInputError(f"metric {validation.metric} is not reported; choose from "
                                 + ", ".join(k for k, v in report.items() if isinstance(v, float)))
        value = report[validation.metric]
        step = checkpoint.checkpoint_step(path)
        logging.info("step %d: %s %.4f", step, label, value)
        improved = best is None or (value < best if validation.lower_is_better else value > best)
        if improved:
            best, stale = value, 0
            info = {"metric": label, "value": value, "report": report}
            if validation.data is not None:
                info["data"] = validation.data
            model_folder.keep_best(path, validation.best_dir, info)
        else:
            stale += 1
            if validation.patience and stale >= validation.patience:
                logging.info("no improvement in %s for %d evaluations: stopping early", label, stale)
                break
        if step >= total_steps:
            break
    return trained
