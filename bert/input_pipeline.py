"""The one input pipeline: text pairs to ids, features cached as TFRecord files, and input_fns.

A cached file is named by a hash of everything that produced it (the examples' content, the vocab,
lower-casing, max length, the processor and the task's labels), so a stale cache is never read. It is
written under a temporary name and renamed when complete, and its example count is kept beside it
in a small JSON file written last: a file without that JSON is never trusted.
"""
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os

import numpy as np
import tensorflow as tf
from absl import logging

from bert import files

# Below this many examples, converting in one process beats starting workers.
PARALLEL_MIN_EXAMPLES = 20000
CACHE_FORMAT = 1  # bump when the feature layout changes


def truncate_pair(tokens_a, tokens_b, max_length):
    """Trims the longer of the two token lists, one token at a time, until both fit in max_length."""
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def encode_text_pair(tokenizer, text_a, text_b, max_seq_length):
    """[CLS] a [SEP] (b [SEP]) as (input_ids, input_mask, segment_ids), each padded to max_seq_length."""
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b else []
    if text_b:
        truncate_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        tokens_a = tokens_a[:max_seq_length - 2]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if text_b:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    padding = max_seq_length - len(input_ids)
    return input_ids + [0] * padding, [1] * len(input_ids) + [0] * padding, segment_ids + [0] * padding


def file_digest(path, _memo={}):
    """sha256 of a file's content, remembered per (path, size, mtime) for this process."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _memo:
        digest = hashlib.sha256()
        with open(path, "rb") as reader:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
        _memo[key] = digest.hexdigest()
    return _memo[key]


def files_digest(paths):
    """One sha256 over the contents of `paths`, in order (their names and places do not count)."""
    return hashlib.sha256("".join(file_digest(path) for path in paths).encode("ascii")).hexdigest()


def examples_digest(examples, ignore=()):
    """sha256 over every example's fields (examples are dataclasses), but those named in `ignore`."""
    digest = hashlib.sha256()
    for example in examples:
        fields = {k: v for k, v in dataclasses.asdict(example).items() if k not in ignore}
        digest.update(json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def data_digest(examples):
    """What the examples say, not where they were read from (a moved file keeps its digest)."""
    return examples_digest(examples, ignore=("source",))


_WORK = None  # (function, items) shared with forked workers


def _convert_slice(bounds):
    function, items = _WORK
    return [function(item) for item in items[bounds[0]:bounds[1]]]


def map_parallel(function, items, num_workers=None, min_items=PARALLEL_MIN_EXAMPLES):
    """[function(x) for x in items], over forked worker processes when there are min_items or more.

    The result is the same whatever the number of workers.
    """
    num_workers = num_workers or os.cpu_count() or 1
    if num_workers <= 1 or len(items) < max(min_items, 2):
        return [function(item) for item in items]
    global _WORK
    _WORK = (function, items)
    size = -(-len(items) // (num_workers * 4))
    bounds = [(start, start + size) for start in range(0, len(items), size)]
    try:
        with multiprocessing.get_context("fork").Pool(num_workers) as pool:
            return [row for chunk in pool.map(_convert_slice, bounds) for row in chunk]
    finally:
        _WORK = None


def _feature(values):
    values = values if isinstance(values, list) else [values]
    if values and isinstance(values[0], float):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def serialize_example(features):
    """{name: int, float or list of them} -> a serialized tf.train.Example (floats as float_list)."""
    return tf.train.Example(features=tf.train.Features(
        feature={name: _feature(values) for name, values in features.items()})).SerializeToString()


def write_tfrecord(path, rows):
    """Writes `rows` (feature dicts, or already serialized examples as bytes) to path through a temporary
    file renamed when complete."""
    tmp = files.temporary_name(path)
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for row in rows:
                writer.write(row if isinstance(row, bytes) else serialize_example(row))
                count += 1
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count


def cached_tfrecord(cache_dir, name, key, examples, convert, num_workers=None, many=False):
    """Converts examples with `convert` (example -> {feature: int or [int]}) into a cached TFRecord.

    key: a JSON-able description of everything that shapes the features (vocab digest, lengths,
    labels, ...); the examples' own content is added to it here. With many=True, `convert` returns a
    list of feature rows per example (e.g. windows over a long text), written in order, each with an
    added `example_index` (its example's position in `examples`).
    Returns (path, number of records).
    """
    full_key = dict(key, examples=examples_digest(examples), format=CACHE_FORMAT)
    digest = hashlib.sha256(json.dumps(full_key, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    path = os.path.join(cache_dir, f"{name}.{digest}.tf_record")
    meta_path = path + ".json"
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as reader:
            count = json.load(reader)["count"]
        logging.info("reusing %s (%d records)", path, count)
        return path, count

    files.remove_stale_temporaries(cache_dir)
    rows = map_parallel(convert, examples, num_workers)
    if many:
        rows = [dict(row, example_index=index) for index, group in enumerate(rows) for row in group]
    os.makedirs(cache_dir, exist_ok=True)
    write_tfrecord(path, rows)
    files.write_text_atomic(meta_path, json.dumps({"count": len(rows), "key": full_key}, indent=1))
    logging.info("wrote %s (%d records)", path, len(rows))
    return path, len(rows)


@dataclasses.dataclass
class FeatureCache:
    """A task's features, cached as TFRecord files in `folder`, keyed by the task's cache_key, the
    examples and `identity` (what else shapes the features: vocab digest, lower-casing, processor)."""
    folder: str
    identity: dict

    def features(self, task, examples, name, training=False):
        """(path, number of records) of examples converted by task.convert."""
        key = dict(task.cache_key(training), **self.identity)
        return cached_tfrecord(self.folder, name, key, examples, functools.partial(task.convert, training=training),
                               many=task.many_features)

    def arrays(self, task, examples, name, training=False):
        """The features as numpy arrays {name: [records, ...]}, through the cache."""
        path, _ = self.features(task, examples, name, training)
        return read_tfrecord_arrays(path, task.feature_spec(training))


def int_feature_spec(shapes):
    """{name: shape} -> {name: tf.io.FixedLenFeature(shape, tf.int64)}."""
    return {name: tf.io.FixedLenFeature(shape, tf.int64) for name, shape in shapes.items()}


def tfrecord_input_fn_builder(paths, feature_spec, batch_size, is_training, drop_remainder=False,
                              shuffle_buffer=10000, seed=None, skip_batches=0):
    """An Estimator input_fn reading `paths`: int64 features become int32; batches of batch_size.

    When training, the data repeat and (unless shuffle_buffer is 0) are shuffled with `seed`, so the
    stream is the same every run; skip_batches drops its first batches (a resumed run passes what
    the interrupted one consumed, and continues with the same data order). Under a distribution
    strategy the batch size is per replica, and each worker reads its own shard of the records.
    """
    def input_fn(params=None, input_context=None):
        del params
        dataset = tf.data.TFRecordDataset(paths)
        if input_context is not None and input_context.num_input_pipelines > 1:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if is_training:
            if shuffle_buffer:
                dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
            dataset = dataset.repeat()

        def parse(record):
            parsed = tf.io.parse_single_example(record, feature_spec)
            return {name: tf.cast(value, tf.int32) if value.dtype == tf.int64 else value
                    for name, value in parsed.items()}

        dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if skip_batches:
            dataset = dataset.skip(skip_batches)
        return dataset.prefetch(tf.data.AUTOTUNE)

    return input_fn


def read_tfrecord_arrays(path, feature_spec):
    """Every record of a features file as numpy: {name: int32 array [records, ...]} (eager mode)."""
    def parse(record):
        return {name: tf.cast(value, tf.int32) for name, value in
                tf.io.parse_single_example(record, feature_spec).items()}

    chunks = list(tf.data.TFRecordDataset(path).map(parse).batch(4096).as_numpy_iterator())
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in feature_spec}


def as_range(value):
    """An episode size: n or (low, high) -> (low, high)."""
    return (value, value) if isinstance(value, (int, np.integer)) else (int(value[0]), int(value[1]))


class EpisodeSampler:
    """N-way K-shot episodes: N distinct classes, K support and Q query rows each, none shared.

    rows_by_class: {class: array of row indices}, every class with at least K + Q rows. n_way and
    k_shot are numbers, or (low, high) ranges from which each episode draws its own N and K (uniformly,
    both ends included; fixed sizes draw nothing, so their stream of episodes is the same either way).
    sample() -> (rows [N*(K+Q)]: the N*K support rows class by class, then the N*Q query rows;
                 episode_labels [N*(K+Q)]: 0..N-1; is_query [N*(K+Q)]: 0 support / 1 query; classes [N]).
    """

    def __init__(self, rows_by_class, n_way, k_shot, q_query, seed):
        self.classes = sorted(rows_by_class)
        self.rows = [np.asarray(rows_by_class[c]) for c in self.classes]
        self.n_way, self.k_shot, self.q_query = as_range(n_way), as_range(k_shot), q_query
        if len(self.classes) < self.n_way[1]:
            raise ValueError(f"{self.n_way[1]}-way episodes need {self.n_way[1]} classes, only {len(self.classes)} "
                             "given")
        short = [c for c, rows in zip(self.classes, self.rows) if len(rows) < self.k_shot[1] + q_query]
        if short:
            raise ValueError(f"classes with fewer than {self.k_shot[1] + q_query} examples: {short}")
        self.rng = np.random.RandomState(seed)

    def _draw(self, size_range):
        low, high = size_range
        return low if low == high else int(self.rng.randint(low, high + 1))

    def sample(self):
        n_way, k_shot = self._draw(self.n_way), self._draw(self.k_shot)
        chosen = self.rng.choice(len(self.classes), n_way, replace=False)
        support, query = [], []
        for index in chosen:
            picked = self.rng.choice(self.rows[index], k_shot + self.q_query, replace=False)
            support.append(picked[:k_shot])
            query.append(picked[k_shot:])
        rows = np.concatenate(support + query)
        labels = np.concatenate([np.repeat(np.arange(n_way), k_shot), np.repeat(np.arange(n_way), self.q_query)])
        is_query = np.concatenate([np.zeros(n_way * k_shot), np.ones(n_way * self.q_query)])
        return rows, labels.astype(np.int32), is_query.astype(np.int32), [self.classes[i] for i in chosen]


def episodic_input_fn_builder(arrays, rows_by_class, n_way, k_shot, q_query, seed):
    """An Estimator input_fn whose every batch is one episode drawn from `arrays` (numpy features).

    n_way, k_shot: numbers or (low, high) ranges (EpisodeSampler). Each worker (input pipeline) draws
    its own reproducible stream: seed + pipeline id.
    """
    n_way, k_shot = as_range(n_way), as_range(k_shot)
    size = n_way[0] * (k_shot[0] + q_query) if n_way[0] == n_way[1] and k_shot[0] == k_shot[1] else None
    names = [name for name in arrays if name != "label_ids"]

    def input_fn(params=None, input_context=None):
        del params
        stream_seed = seed + (input_context.input_pipeline_id if input_context is not None else 0)

        def episodes():
            sampler = EpisodeSampler(rows_by_class, n_way, k_shot, q_query, stream_seed)
            while True:
                rows, labels, is_query, _ = sampler.sample()
                episode = {name: arrays[name][rows] for name in names}
                episode.update(episode_labels=labels, is_query=is_query)
                yield episode

        signature = {name: tf.TensorSpec([size] + list(arrays[name].shape[1:]), tf.int32) for name in names}
        signature.update(episode_labels=tf.TensorSpec([size], tf.int32), is_query=tf.TensorSpec([size], tf.int32))
        return tf.data.Dataset.from_generator(episodes, output_signature=signature).prefetch(2)

    return input_fn


def array_input_fn_builder(arrays, batch_size):
    """An input_fn over in-memory numpy features, in order, once (for prediction)."""
    def input_fn(params=None):
        del params
        return tf.data.Dataset.from_tensor_slices(dict(arrays)).batch(batch_size)

    return input_fn
