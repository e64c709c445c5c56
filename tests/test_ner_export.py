"""NER export: the in-graph word splitting, windows, merging and entity chunking against their Python
twins, and a tiny trained model's SavedModel (loaded in a fresh process) against run_ner.py --do_predict."""
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert import ner, tagging
from bert.errors import UserInputError
from bert.export import tagging_graph

SCHEME_TAGS = {"BIO": "BI", "IOB1": "BI", "BIOES": "BIES", "BMES": "BMES"}


@pytest.mark.parametrize("scheme", sorted(SCHEME_TAGS))
def test_entity_spans_chunk_as_python(scheme):
    rng = random.Random(len(scheme))
    labels = ["O"] + [f"{p}-{t}" for p in SCHEME_TAGS[scheme] for t in ("LOC", "PER", "X")]
    rows = [[rng.choice(labels) for _ in range(rng.randint(0, 12))] for _ in range(300)]
    width = max(len(r) for r in rows)
    ids = tf.constant([[labels.index(t) for t in r] + [0] * (width - len(r)) for r in rows], tf.int32)
    (first, last, kind), types = tagging_graph.entity_spans(ids, labels, scheme)
    for row, tags in enumerate(rows):
        got = [(types[k], f, l) for f, l, k in zip(first[row].numpy(), last[row].numpy(), kind[row].numpy())]
        assert got == ner.tags_to_entities(tags, scheme), tags
    (first, _, _), _ = tagging_graph.entity_spans(tf.zeros([2, 0], tf.int32), labels, scheme)  # no words at all
    assert first.to_list() == [[], []]


def test_windows_and_max_context_as_python():
    rng = random.Random(5)
    for _ in range(40):
        room, stride = rng.randint(1, 9), rng.randint(1, 6)
        texts = [[rng.randint(1, room) for _ in range(rng.choice([0, 1, 3, 10, 25]))] for _ in range(4)]
        counts = tf.ragged.constant(texts, dtype=tf.int64, ragged_rank=1) if any(texts) else \
            tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64), [0] * len(texts))
        text, first, count = (x.numpy().tolist() for x in tagging_graph.cut_windows(counts, room, stride))
        expected = [(t, w.first_word, w.words) for t, c in enumerate(texts) for w in tagging.windows(c, room, stride)]
        assert list(zip(text, first, count)) == expected, (texts, room, stride)
        starts = np.concatenate([[0], np.cumsum([len(c) for c in texts])])
        word_ids = tf.ragged.range(np.array([starts[t] for t in text]) + first, np.array([starts[t] for t in text])
                                   + np.array(first) + count)
        chosen = tagging_graph._max_context(word_ids)  # pylint: disable=protected-access
        for t, c in enumerate(texts):
            windows = tagging.windows(c, room, stride)
            mine = [i for i, x in enumerate(text) if x == t]
            for word in range(len(c)):
                best = tagging.max_context(windows, word)
                window = mine[best]
                assert chosen[window][word - first[window]].numpy()


@pytest.mark.parametrize("how", tagging_graph.WORD_SPLITS)
def test_split_words_as_python(how):
    texts = ["Hello, world  U.S.-based 北京欢迎你!", "", "  a\tb\u3000c ", "é日x\u00a0y", "tab\there\nnew line",
             "\u2028x\u0085y", "emoji 😀 ok", "数字123和ABC"]
    words, start, end, _, _, _ = tagging_graph.split_words(tf.constant(texts), how)
    for row, text in enumerate(texts):
        if how == "basic":
            spans = ner.split_words(text)
        else:
            spans = [(i, i + 1) for i, char in enumerate(text) if not char.isspace()]
        assert list(zip(start[row].numpy(), end[row].numpy())) == spans, text
        assert [w.decode("utf-8") for w in words[row].numpy()] == [text[s:e] for s, e in spans]


NER_CHILD = r'''
"""Loads each NER SavedModel with TensorFlow alone; runs serving_default on the texts in one batch and one by one."""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401

request = json.load(open(sys.argv[1], encoding="utf-8"))
served = {"imported": sorted(m for m in sys.modules if m == "bert" or m.startswith("bert."))}
for name, job in request.items():
    model = tf.saved_model.load(job["path"])
    serve = model.signatures["serving_default"]
    def listed(out):
        return {k: [[x.decode("utf-8") if isinstance(x, bytes) else int(x) for x in row] if v.ndim == 2 else
                    int(row) for row in v] for k, v in ((k, v.numpy()) for k, v in out.items())}
    served[name] = {"signatures": sorted(model.signatures), "batch": listed(serve(text_a=tf.constant(job["texts"]))),
                    "single": [listed(serve(text_a=tf.constant([t]))) for t in job["texts"]],
                    "windows": int(model.signatures["tokenize"](text_a=tf.constant(job["texts"]))["input_ids"].shape[0])}
json.dump(served, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
'''


@pytest.fixture(scope="module")
def ner_world(tmp_path_factory):
    """A tiny English CoNLL model (CRF, BIO) and a tiny Chinese CLUENER one (softmax, BIOES), trained with
    run_ner.py, exported, run in a fresh process and by run_ner.py --do_predict on the same texts."""
    from bert import export
    from test_run_ner import (HAN_OTHER, HAN_PLACES, OTHER, PEOPLE, PLACES, cluener_records, conll_sentences, run,
                              write_conll)
    from conftest import tiny_config

    root = tmp_path_factory.mktemp("ner_export")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "."] + PEOPLE + PLACES + OTHER + sorted(
        set("".join(HAN_PLACES) + HAN_OTHER))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tiny_config(vocab_size=len(vocab)).to_json_file(str(root / "bert_config.json"))

    write_conll(root / "train.txt", conll_sentences(120, 0))
    run(root, root / "en", do_train=True, train_file=root / "train.txt", use_crf=True, num_train_epochs=6)
    rng = random.Random(4)
    english = ["ann met bob in rome", "", "   ", "eve, bob and ann saw paris.", "ANN met\tbob\u00a0in  paris today",
               " ".join(rng.choice(PEOPLE + PLACES + OTHER) for _ in range(40)),  # windows at max_seq_length 16
               "unknownword ann xyz rome rome", "ann" * 30 + " bob"]
    english += [" ".join(rng.choice(PEOPLE + PLACES + OTHER + [",", "."]) for _ in range(rng.randint(1, 12)))
                for _ in range(24)]

    records = cluener_records(80, 3)
    (root / "train.json").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    run(root, root / "zh", do_train=True, train_file=root / "train.json", model_scheme="BIOES", num_train_epochs=6)
    chinese = [r["text"] for r in records[:12]] + ["我们在北京 ok 上海", "", "北京" * 12 + "去了上海", "AB北京12上海"]

    texts = {"en": english, "zh": chinese}
    predicted = {}
    for name, lines in texts.items():  # run_ner.py --do_predict on the same texts
        path = root / f"{name}_predict.jsonl"
        path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines), encoding="utf-8")
        fmt = "jsonl" if name == "en" else "cluener"
        run(root, root / name, do_predict=True, predict_file=path, data_format=fmt)
        predicted[name] = [json.loads(line) for line in (root / name / "predictions.jsonl").read_text(
            encoding="utf-8").splitlines()]
    request = {name: {"path": export.export_saved_model(str(root / name), str(root / "exports" / name)),
                      "texts": texts[name]} for name in texts}
    (root / "request.json").write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    (root / "child.py").write_text(NER_CHILD)
    env = dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(root / "child.py"), str(root / "request.json"),
                             str(root / "served.json")], cwd=str(root), env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads((root / "served.json").read_text(encoding="utf-8"))
    return dict(root=root, texts=texts, predicted=predicted, served=served)


def entities_of(out, row):
    return [{"start": out["entity_start"][row][k], "end": out["entity_end"][row][k], "type": out["entity_type"][row][k],
             "text": out["entity_text"][row][k]} for k in range(out["entity_count"][row])]


@pytest.mark.parametrize("name", ["en", "zh"])
def test_export_tags_as_run_ner_predicts(ner_world, name):
    served, texts = ner_world["served"], ner_world["texts"][name]
    assert served["imported"] == [] and served[name]["signatures"] == ["serving_default", "tokenize"]
    batch = served[name]["batch"]
    assert served[name]["windows"] > len(texts)  # some texts were cut into windows
    found = 0
    for row, (text, expected) in enumerate(zip(texts, ner_world["predicted"][name])):
        assert expected["text"] == text
        assert entities_of(batch, row) == expected["entities"], text
        assert entities_of(served[name]["single"][row], 0) == expected["entities"]  # alone = in a batch
        found += len(expected["entities"])
        # Tokens: their character spans, and their tags chunked in Python give the in-graph entities.
        count = batch["token_count"][row]
        spans = list(zip(batch["token_start"][row][:count], batch["token_end"][row][:count]))
        assert [text[s:e] for s, e in spans] == batch["tokens"][row][:count]
        assert all(t == "" for t in batch["tags"][row][count:]) and all(s == -1 for s in batch["token_start"][row][count:])
        scheme = "BIO" if name == "en" else "BIOES"
        chunked = [(kind, spans[first][0], spans[last][1])
                   for kind, first, last in ner.tags_to_entities(batch["tags"][row][:count], scheme)]
        assert chunked == [(e["type"], e["start"], e["end"]) for e in expected["entities"]]
    assert found >= len(texts) // 2  # the models found entities: the comparison is not of empty lists


def test_predict_py_writes_run_ner_predictions(ner_world, tmp_path):
    import predict
    from absl import flags
    root = ner_world["root"]
    for name in ("en", "zh"):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["predict", f"--saved_model_dir={root / 'exports' / name}", f"--predict_file={root / f'{name}_predict.jsonl'}",
                     f"--output_file={tmp_path / name}.jsonl", "--predict_batch_size=5"])
        predict.main([])
        assert (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8") == \
            (root / name / "predictions.jsonl").read_text(encoding="utf-8")
    lines = tmp_path / "lines.txt"  # one text a line: the same entities as the jsonl texts
    lines.write_text("\n".join(ner_world["texts"]["en"][:6]) + "\n", encoding="utf-8")
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["predict", f"--saved_model_dir={root / 'exports' / 'en'}", f"--predict_file={lines}",
                 f"--output_file={tmp_path / 'lines.jsonl'}"])
    predict.main([])
    got = [json.loads(line) for line in (tmp_path / "lines.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == ner_world["predicted"]["en"][:6]
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["predict", f"--saved_model_dir={root / 'exports' / 'en'}", f"--predict_file={lines}",
                 f"--output_file={tmp_path / 'x.jsonl'}", f"--support_file={lines}"])
    with pytest.raises(UserInputError, match="--support_file is for few-shot exports"):
        predict.main([])
