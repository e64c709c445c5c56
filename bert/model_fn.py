"""The one model_fn builder every script uses: encoder, task head, loss, train op, metrics, predictions."""
import dataclasses

import tensorflow as tf

from bert import checkpoint, modeling, optimization

PRECISIONS = {"fp32": tf.float32, "fp16": tf.float16, "bf16": tf.bfloat16}


def model_fn_builder(task, bert_config, init_checkpoint=None, optimizer_config=None, precision="fp32",
                     use_one_hot_embeddings=False, training_hooks=()):
    """Returns an Estimator model_fn for `task` (a tasks.Task).

    precision: "fp32", "fp16" (float16 compute with dynamic loss scaling) or "bf16".
    init_checkpoint: weights to start from; what it lacks (a new head) starts fresh and is reported.
    optimizer_config: optimization.OptimizerConfig, needed for training.
    training_hooks: extra SessionRunHooks for training, given (loss tensor) -> hook factories.
    """
    compute_type = PRECISIONS[precision]

    def model_fn(features, labels, mode, params):
        del labels, params
        model = modeling.BertModel(
            bert_config, is_training=mode == tf.estimator.ModeKeys.TRAIN,
            input_ids=features["input_ids"], input_mask=features["input_mask"],
            token_type_ids=features["segment_ids"], use_one_hot_embeddings=use_one_hot_embeddings,
            compute_type=compute_type)
        outputs = task.build(model, features, mode)
        if init_checkpoint:
            checkpoint.init_from_checkpoint(init_checkpoint, tf.compat.v1.trainable_variables(),
                                            task.init_name_map(init_checkpoint))

        if mode == tf.estimator.ModeKeys.TRAIN:
            config = optimizer_config
            if precision == "fp16":  # float16 gradients underflow without loss scaling
                config = dataclasses.replace(config, dynamic_loss_scale=True)
            train_op = optimization.create_train_op(outputs.loss, config)
            return tf.estimator.EstimatorSpec(mode, loss=outputs.loss, train_op=train_op,
                                              training_hooks=[make(outputs.loss) for make in training_hooks])
        if mode == tf.estimator.ModeKeys.EVAL:
            return tf.estimator.EstimatorSpec(mode, loss=outputs.loss, eval_metric_ops=outputs.eval_metric_ops)
        return tf.estimator.EstimatorSpec(mode, predictions=outputs.predictions)

    return model_fn
