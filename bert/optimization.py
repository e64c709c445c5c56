"""AdamW with decoupled weight decay, BERT's learning-rate schedule, clipping, loss scaling, accumulation.

`create_train_op(loss, OptimizerConfig(...))` is the one training op every script uses:

  lr(step) = peak * step / warmup                       while step < warmup
           = peak * (1 - step / num_train_steps)        after (linear decay to end_learning_rate)
  grads    = d(loss * scale)/dvars / scale               (scale = 1 unless dynamic loss scaling)
  every `gradient_accumulation_steps` calls: the mean of the accumulated grads, clipped to global
  norm `clip_norm`, goes to AdamW; global_step counts these updates, not the micro-batches.
  With dynamic loss scaling (float16), an update whose gradients are not all finite is skipped: no
  variable and no global_step changes, and the scale halves; after `loss_scale_growth_interval` good
  updates in a row it doubles. With accumulation, a non-finite update is skipped the same way.

Under a distribution strategy (Estimator with MirroredStrategy or MultiWorkerMirroredStrategy) the
gradients are all-reduced to their mean before clipping, so every replica clips, tests and applies
the same update. The op has no tf.cond: a skipped update reaches the optimizer as NaN gradients,
which AdamWeightDecayOptimizer treats as "leave this variable and its slots as they are". That keeps
it valid inside a replica context (no merge_call under a cond) and under XLA.
"""
import dataclasses
import re

import tensorflow as tf

tf1 = tf.compat.v1


@dataclasses.dataclass
class OptimizerConfig:
    learning_rate: float
    num_train_steps: int  # optimizer updates (global steps), not micro-batches
    num_warmup_steps: int = 0
    end_learning_rate: float = 0.0
    weight_decay_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 1.0  # global-norm clipping; 0 or None turns it off
    exclude_from_weight_decay: tuple = ("LayerNorm", "layer_norm", "bias")
    gradient_accumulation_steps: int = 1
    dynamic_loss_scale: bool = False  # on for float16 training
    initial_loss_scale: float = 2.0 ** 15
    loss_scale_growth_interval: int = 2000  # good updates in a row before the scale doubles


def learning_rate_schedule(global_step, config):
    """Linear warmup to config.learning_rate, then linear decay to end_learning_rate: a float32 scalar."""
    step = tf.cast(global_step, tf.float32)
    total = float(max(config.num_train_steps, 1))
    decayed = config.end_learning_rate + (config.learning_rate - config.end_learning_rate) * (
        1.0 - tf.minimum(step, total) / total)
    if not config.num_warmup_steps:
        return decayed
    warmup = config.learning_rate * step / float(config.num_warmup_steps)
    return tf.where(step < config.num_warmup_steps, warmup, decayed)


class AdamWeightDecayOptimizer(tf1.train.Optimizer):
    """Adam without bias correction plus decoupled weight decay (BERT's optimizer).

    update = m / (sqrt(v) + epsilon) + weight_decay_rate * var   (decay skipped for excluded names)
    var   -= learning_rate * update
    A gradient with any non-finite value leaves the variable and its slots unchanged.
    Slots are named `<var>/adam_m` and `<var>/adam_v`, as in google-research/bert's checkpoints.
    """

    def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 exclude_from_weight_decay=None, name="AdamWeightDecayOptimizer"):
        super().__init__(use_locking=False, name=name)
        self.learning_rate = learning_rate
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())

    def _create_slots(self, var_list):
        for var in var_list:
            self._zeros_slot(var, "m", "adam_m")
            self._zeros_slot(var, "v", "adam_v")

    def decays(self, var_name):
        """Whether weight decay applies to the variable called var_name."""
        if not self.weight_decay_rate:
            return False
        return not any(re.search(pattern, var_name) for pattern in self.exclude_from_weight_decay)

    def _resource_apply_dense(self, grad, var):
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        apply = tf.reduce_all(tf.math.is_finite(grad))
        grad = tf.where(apply, grad, tf.zeros_like(grad))
        next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self.decays(var.op.name):
            update += self.weight_decay_rate * var
        return tf.group(var.assign(tf.where(apply, var - self.learning_rate * update, var)),
                        m.assign(tf.where(apply, next_m, m)), v.assign(tf.where(apply, next_v, v)))

    _apply_dense = _resource_apply_dense

    def _resource_apply_sparse(self, grad, var, indices):
        dense = tf.convert_to_tensor(tf.IndexedSlices(grad, indices, tf.shape(var, out_type=indices.dtype)))
        return self._resource_apply_dense(dense, var)


def _all_finite(grads):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])


def _state_variable(name, initial, dtype, shape=()):
    """A non-trainable variable every replica updates identically (kept from the first replica)."""
    return tf1.get_variable(name, shape=shape, dtype=dtype, initializer=tf1.constant_initializer(initial),
                            trainable=False, use_resource=True,
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def create_train_op(loss, config, tvars=None, global_step=None):
    """The training op for `loss` (this replica's float32 scalar mean loss) under `config`."""
    if global_step is None:
        global_step = tf1.train.get_or_create_global_step()
    if tvars is None:
        tvars = tf1.trainable_variables()
    replica = tf.distribute.get_replica_context()
    replicas = replica.num_replicas_in_sync if replica is not None else 1
    learning_rate = learning_rate_schedule(global_step, config)
    tf1.summary.scalar("learning_rate", learning_rate)
    optimizer = AdamWeightDecayOptimizer(
        learning_rate, weight_decay_rate=config.weight_decay_rate, beta_1=config.beta_1,
        beta_2=config.beta_2, epsilon=config.epsilon,
        exclude_from_weight_decay=config.exclude_from_weight_decay)
    steps = max(int(config.gradient_accumulation_steps), 1)

    with tf1.variable_scope("optimizer_state"):
        loss_scale = good_updates = micro_step = None
        if config.dynamic_loss_scale:
            loss_scale = _state_variable("loss_scale", config.initial_loss_scale, tf.float32)
            good_updates = _state_variable("good_updates", 0, tf.int64)
            tf1.summary.scalar("loss_scale", loss_scale)
        if steps > 1:
            micro_step = _state_variable("micro_step", 0, tf.int64)

    scaled_loss = loss * loss_scale if loss_scale is not None else loss
    pairs = [(g, v) for g, v in zip(tf.gradients(scaled_loss, tvars), tvars) if g is not None]
    if not pairs:
        raise ValueError("the loss has no gradient with respect to any trainable variable")
    variables = [v for _, v in pairs]
    grads = [tf.convert_to_tensor(g) for g, _ in pairs]  # IndexedSlices (embedding look-ups) to dense
    if loss_scale is not None:
        grads = [g / loss_scale for g in grads]
    if replicas > 1:
        # Mean over replicas, placed like the variables; each replica continues with its local copy.
        # (ReplicaContext.all_reduce would do the same through custom_gradient, which cannot find
        # per-replica variables in graph mode.)
        grads = replica.merge_call(
            lambda strategy, per_replica: strategy.extended.batch_reduce_to(
                tf.distribute.ReduceOp.MEAN, list(zip(per_replica, variables))),
            args=(grads,))

    if steps > 1:
        accumulators = [_state_variable(v.op.name + "/grad_accum", 0.0, tf.float32, v.shape)
                        for v in variables]
        with tf.control_dependencies([a.assign_add(g) for a, g in zip(accumulators, grads)]):
            count = micro_step.assign_add(1)
            grads = [a.read_value() / float(steps) for a in accumulators]
        is_update = tf.equal(count % steps, 0)
    else:
        is_update = tf.constant(True)

    # Test before clipping: clip_by_global_norm turns every gradient NaN when one is not finite.
    skips_non_finite = loss_scale is not None or steps > 1
    finite = _all_finite(grads) if skips_non_finite else tf.constant(True)
    if config.clip_norm:
        grads, _ = tf.clip_by_global_norm(grads, config.clip_norm)
    apply = tf.logical_and(is_update, finite)
    if skips_non_finite:
        grads = [tf.where(apply, g, tf.fill(tf.shape(g), float("nan"))) for g in grads]
    # Under a strategy the optimizer sums the replicas' gradients again: hand it 1/replicas of the mean.
    apply_op = optimizer.apply_gradients([(g / replicas, v) for g, v in zip(grads, variables)])

    with tf.control_dependencies([apply_op]):
        updates = [global_step.assign_add(tf.cast(apply, global_step.dtype))]
        if steps > 1:
            updates += [a.assign(tf.where(is_update, tf.zeros_like(a), a)) for a in accumulators]
        if loss_scale is not None:
            good = tf.where(is_update, tf.where(finite, good_updates + 1, tf.zeros_like(good_updates)),
                            good_updates)
            grow = good >= config.loss_scale_growth_interval
            new_scale = tf.where(grow, loss_scale * 2.0, loss_scale)
            new_scale = tf.where(tf.logical_and(is_update, tf.logical_not(finite)),
                                 tf.maximum(loss_scale / 2.0, 1.0), new_scale)
            updates += [loss_scale.assign(new_scale),
                        good_updates.assign(tf.where(grow, tf.zeros_like(good), good))]
    return tf.group(updates)
