"""Tests for processors/: the built-in processors on files written here, the registry, label maps,
and the message of every kind of bad input (file name and line number)."""
import json
import os

import pytest

import processors
from bert.errors import UserInputError
from processors import (InputExample, ProcessorOptions, check_labels, get_processor, import_processor_module,
                        labels_from_examples, load_label_map, register_processor, registered_processors,
                        resolve_labels, save_label_map)
from processors import registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("BERT_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


def write(folder, name, text, crlf=False, bom=False):
    """Writes `text` as UTF-8 (optionally with CRLF line ends and a byte order mark); returns the path."""
    path = os.path.join(str(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = text.replace("\n", "\r\n") if crlf else text
    with open(path, "wb") as writer:
        writer.write((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


def rows(*lines, sep="\t"):
    return "".join(sep.join(line) + "\n" for line in lines)


def jsonl(*records):
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def raises(match_all, call, *args):
    """Runs call(*args), which must raise UserInputError; every string in `match_all` must be in its message."""
    with pytest.raises(UserInputError) as caught:
        call(*args)
    message = str(caught.value)
    for part in match_all:
        assert part in message, f"{part!r} not in {message!r}"
    return message


@pytest.fixture
def clean_registry():
    """Lets a test register processors without leaving them registered for the next test."""
    saved_registry, saved_files = dict(registry._REGISTRY), dict(registry._LOADED_FILES)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved_registry)
    registry._LOADED_FILES.clear()
    registry._LOADED_FILES.update(saved_files)


# --- tsv -------------------------------------------------------------------------------------


def test_tsv_finds_columns_by_name_in_either_order(tmp_path):
    write(tmp_path, "train.tsv", rows(["label", "text_a"], ["pos", "a fine film"], ["neg", "dull"]))
    write(tmp_path, "dev.tsv", rows(["text_a", "text_b", "label"], ["first", "second", "neg"]))
    processor = get_processor("tsv")
    train = processor.get_train_examples(str(tmp_path))
    assert train == [
        InputExample("train-0", "a fine film", None, "pos", f"{tmp_path}/train.tsv:2"),
        InputExample("train-1", "dull", None, "neg", f"{tmp_path}/train.tsv:3"),
    ]
    dev = processor.get_dev_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in dev] == [("dev-0", "first", "second", "neg")]


def test_tsv_takes_column_names_from_options_and_test_labels_are_optional(tmp_path):
    write(tmp_path, "mine_train.tsv", rows(["id", "intent", "utterance"], ["1", "greet", "hello there"]))
    write(tmp_path, "test.tsv", rows(["utterance"], ["bye now"]))
    options = ProcessorOptions(text_a_column="utterance", label_column="intent", train_file="mine_train")
    processor = get_processor("TSV", options)  # names are case-insensitive
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in train] == [("hello there", "greet")]
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in test] == [("bye now", None)]


def test_tsv_keeps_quotes_as_text(tmp_path):
    # An unbalanced quote opening a field (as in MRPC) must not swallow the rows that follow.
    write(tmp_path, "train.tsv", rows(["label", "text_a"], ["1", '"The pie business does not fit.'],
                                      ["0", 'say "hi"'], ["1", "last"]))
    train = get_processor("tsv").get_train_examples(str(tmp_path))
    assert [e.text_a for e in train] == ['"The pie business does not fit.', 'say "hi"', "last"]


def test_tsv_without_header(tmp_path):
    write(tmp_path, "train.tsv", rows(["pos", "good", "also good"], ["neg", "bad"]))
    train = get_processor("tsv", ProcessorOptions(has_header=False)).get_train_examples(str(tmp_path))
    assert [(e.label, e.text_a, e.text_b, e.source[-1]) for e in train] == [
        ("pos", "good", "also good", "1"), ("neg", "bad", None, "2")]


# --- csv -------------------------------------------------------------------------------------


def test_csv_with_renamed_columns_and_quoted_fields(tmp_path):
    write(tmp_path, "train.csv", 'cat,label,review\n'
                                 'books,1,"good, really ""good"""\n'
                                 'fruit,0,"two\nlines"\n'
                                 'fruit,1,plain\n')
    options = ProcessorOptions(label_column="label", text_a_column="review")
    train = get_processor("csv", options).get_train_examples(str(tmp_path))
    assert [(e.label, e.text_a) for e in train] == [("1", 'good, really "good"'), ("0", "two\nlines"), ("1", "plain")]
    # A row's line is the line it starts on, so the row after a two-line field is on line 5.
    assert [e.source.rsplit(":", 1)[1] for e in train] == ["2", "3", "5"]


def test_csv_without_header_is_label_text_a_text_b(tmp_path):
    write(tmp_path, "dev.csv", 'yes,"is it, though?",it is\nno,nope\n')
    dev = get_processor("csv", ProcessorOptions(has_header=False)).get_dev_examples(str(tmp_path))
    assert [(e.label, e.text_a, e.text_b) for e in dev] == [("yes", "is it, though?", "it is"), ("no", "nope", None)]


# --- jsonl -----------------------------------------------------------------------------------


def test_jsonl_fewclue_style_with_numeric_labels_and_blank_lines(tmp_path):
    write(tmp_path, "train_0.json", jsonl(
        {"label": 102, "label_desc": "news_entertainment", "sentence": "为何农民工加班", "id": 1},
        {"label": 107, "label_desc": "news_car", "sentence": "公路封闭施工", "id": 2}) + "\n  \n")
    write(tmp_path, "test.json", jsonl({"id": "0", "sentence": "加长3.4米"}))
    options = ProcessorOptions(text_a_column="sentence", label_column="label_desc", train_file="train_0")
    processor = get_processor("jsonl", options)
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.text_a, e.label, e.text_b) for e in train] == [("为何农民工加班", "news_entertainment", None),
                                                                ("公路封闭施工", "news_car", None)]
    assert train[1].source == os.path.join(str(tmp_path), "train_0.json") + ":2"
    assert processor.get_test_examples(str(tmp_path))[0].label is None
    numeric = get_processor("jsonl", ProcessorOptions(text_a_column="sentence", train_file="train_0"))
    assert [e.label for e in numeric.get_train_examples(str(tmp_path))] == ["102", "107"]


def test_jsonl_falls_back_to_jsonl_extension(tmp_path):
    write(tmp_path, "dev.jsonl", jsonl({"text_a": "a", "text_b": "b", "label": "x"}))
    processor = get_processor("jsonl")
    assert processor.data_file(str(tmp_path), "dev") == os.path.join(str(tmp_path), "dev.jsonl")
    assert [(e.text_a, e.text_b, e.label) for e in processor.get_dev_examples(str(tmp_path))] == [("a", "b", "x")]
    write(tmp_path, "dev.json", jsonl({"text_a": "c", "label": "y"}))  # .json wins when both exist
    assert [e.text_a for e in processor.get_dev_examples(str(tmp_path))] == ["c"]


# --- fixed layouts ---------------------------------------------------------------------------


MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def test_mrpc_layout(tmp_path):
    write(tmp_path, "train.tsv", rows(MRPC_HEADER, ["1", "11", "12", "He said it.", '"It was said.'],
                                      ["0", "13", "14", "Cats.", "Dogs."]), bom=True)
    write(tmp_path, "test.tsv", rows(["index"] + MRPC_HEADER[1:], ["0", "21", "22", "One.", "Two."]))
    processor = get_processor("mrpc")
    assert processor.get_labels() == ["0", "1"]
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.label, e.text_a, e.text_b) for e in train] == [("1", "He said it.", '"It was said.'),
                                                               ("0", "Cats.", "Dogs.")]
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.label, e.text_a, e.text_b, e.guid) for e in test] == [(None, "One.", "Two.", "test-0")]


def test_cola_layout(tmp_path):
    write(tmp_path, "train.tsv", rows(["gj04", "1", "", "Our friends won't buy this analysis."],
                                      ["gj04", "0", "*", "They drank the pub."]))
    write(tmp_path, "test.tsv", rows(["index", "sentence"], ["0", "Bill whistled past the house."]))
    processor = get_processor("cola")
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.label, e.text_a, e.text_b) for e in train] == [("1", "Our friends won't buy this analysis.", None),
                                                               ("0", "They drank the pub.", None)]
    assert train[0].source.endswith("train.tsv:1")  # no header: the first row is line 1
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.label, e.text_a) for e in test] == [(None, "Bill whistled past the house.")]


def test_mnli_layout_reads_matched_files(tmp_path):
    header = ["index", "promptID", "pairID", "genre", "s1_bin", "s2_bin", "s1_parse", "s2_parse",
              "sentence1", "sentence2", "label1", "gold_label"]
    write(tmp_path, "train.tsv", rows(header, ["0", "1", "1e", "gov", "", "", "", "", "Premise.", "Hypothesis.",
                                               "neutral", "neutral"]))
    write(tmp_path, "dev_matched.tsv", rows(header, ["0", "2", "2e", "gov", "", "", "", "", "P.", "H.",
                                                     "entailment", "entailment"]))
    write(tmp_path, "test_matched.tsv", rows(header[:10], ["0", "3", "3e", "gov", "", "", "", "", "TP.", "TH."]))
    processor = get_processor("mnli")
    assert processor.get_labels() == ["contradiction", "entailment", "neutral"]
    assert processor.data_file(str(tmp_path), "dev") == os.path.join(str(tmp_path), "dev_matched.tsv")
    assert [(e.text_a, e.text_b, e.label) for e in processor.get_train_examples(str(tmp_path))] == [
        ("Premise.", "Hypothesis.", "neutral")]
    assert [e.label for e in processor.get_dev_examples(str(tmp_path))] == ["entailment"]
    assert [(e.text_a, e.label) for e in processor.get_test_examples(str(tmp_path))] == [("TP.", None)]
    mismatched = get_processor("mnli", ProcessorOptions(dev_file="dev_mismatched"))
    assert mismatched.data_file(str(tmp_path), "dev") == os.path.join(str(tmp_path), "dev_mismatched.tsv")


def test_xnli_layout_filters_by_language_and_maps_contradictory(tmp_path):
    write(tmp_path, "multinli/multinli.train.zh.tsv", rows(["premise", "hypo", "label"],
                                                           ["前提", "假设", "contradictory"], ["甲", "乙", "neutral"]))
    dev_header = ["language", "gold_label", "sentence1_binary_parse", "sentence1", "sentence2", "pairID"]
    write(tmp_path, "xnli.dev.tsv", rows(dev_header, ["en", "neutral", "", "A.", "B.", "1"],
                                         ["zh", "entailment", "", "中文前提", "中文假设", "2"]))
    processor = get_processor("xnli")
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.text_a, e.text_b, e.label) for e in train] == [("前提", "假设", "contradiction"), ("甲", "乙", "neutral")]
    dev = processor.get_dev_examples(str(tmp_path))
    assert [(e.text_a, e.text_b, e.label, e.source[-1]) for e in dev] == [("中文前提", "中文假设", "entailment", "3")]
    english = get_processor("xnli", ProcessorOptions(language="en")).get_dev_examples(str(tmp_path))
    assert [e.text_a for e in english] == ["A."]
    raises(["xnli.dev.tsv", "no rows with language 'fr'", "['en', 'zh']"],
           get_processor("xnli", ProcessorOptions(language="fr")).get_dev_examples, str(tmp_path))


# --- multi-label, BOM and CRLF ---------------------------------------------------------------


def test_multi_label_splits_strips_and_drops_empty_parts(tmp_path):
    write(tmp_path, "train.tsv", rows(["text_a", "label"], ["both", " sport , news,,"], ["one", "news"]))
    write(tmp_path, "train.json", jsonl({"text_a": "listed", "label": ["a", "b"]},
                                        {"text_a": "piped", "label": "c| d"}))
    tsv = get_processor("tsv", ProcessorOptions(multi_label=True)).get_train_examples(str(tmp_path))
    assert [e.label for e in tsv] == [["sport", "news"], ["news"]]
    assert labels_from_examples(tsv) == ["news", "sport"]
    options = ProcessorOptions(multi_label=True, label_separator="|")
    assert [e.label for e in get_processor("jsonl", options).get_train_examples(str(tmp_path))] == [
        ["a", "b"], ["c", "d"]]


@pytest.mark.parametrize("name, file_name, text", [
    ("tsv", "train.tsv", "label\ttext_a\nx\tfirst\ny\tsecond\n"),  # text_a last: no "\r" may stick to it
    ("csv", "train.csv", 'label,text_a\nx,first\ny,"second"\n'),
    ("jsonl", "train.json", '{"text_a": "first", "label": "x"}\n{"text_a": "second", "label": "y"}\n'),
])
def test_bom_and_crlf_are_handled(tmp_path, name, file_name, text):
    write(tmp_path, file_name, text, crlf=True, bom=True)
    train = get_processor(name).get_train_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in train] == [("first", "x"), ("second", "y")]
    assert [e.source.rsplit(":", 1)[1] for e in train] == (["1", "2"] if name == "jsonl" else ["2", "3"])


# --- file names ------------------------------------------------------------------------------


def test_data_file_adds_the_extension_to_base_names_only(tmp_path):
    data_dir = str(tmp_path)
    assert get_processor("tsv").data_file(data_dir, "train") == os.path.join(data_dir, "train.tsv")
    assert get_processor("csv").data_file(data_dir, "test") == os.path.join(data_dir, "test.csv")
    full = get_processor("tsv", ProcessorOptions(train_file="all.tsv", dev_file="sub/dev.txt"))
    assert full.data_file(data_dir, "train") == os.path.join(data_dir, "all.tsv")
    write(tmp_path, "sub/dev.txt", "text_a\tlabel\nsomething\tz\n")  # an existing full name is kept
    assert full.data_file(data_dir, "dev") == os.path.join(data_dir, "sub", "dev.txt")
    assert [e.label for e in full.get_dev_examples(data_dir)] == ["z"]


# --- user processors and the registry -------------------------------------------------------


USER_MODULE = '''
import dataclasses
from processors import DataProcessor, InputExample, register_processor


@dataclasses.dataclass
class Counter:  # a dataclass: needs its module in sys.modules while it is imported
    n: int = 0


@register_processor("{name}")
class LinesProcessor(DataProcessor):
    """label<space>text per line of train.txt."""
    extensions = (".txt",)

    def get_labels(self):
        return ["neg", "pos"]

    def read_examples(self, path, split):
        with open(path, encoding="utf-8") as reader:
            lines = [line.split(" ", 1) for line in reader.read().splitlines()]
        return [self.make_example(split, i, path, i + 1, text, label=label) for i, (label, text) in enumerate(lines)]
'''


def test_user_processor_module_by_path_registers_its_processor(tmp_path, clean_registry):
    module = write(tmp_path, "my_processors.py", USER_MODULE.format(name="Lines"))
    write(tmp_path, "data/train.txt", "pos a good day\nneg a bad one\n")
    assert "lines" not in registered_processors()
    import_processor_module(module)
    import_processor_module(module)  # a second import of the same file is harmless
    assert "lines" in registered_processors()
    processor = get_processor("lines")
    assert processor.name == "lines"
    train = processor.get_train_examples(str(tmp_path / "data"))
    assert [(e.label, e.text_a) for e in train] == [("pos", "a good day"), ("neg", "a bad one")]
    assert resolve_labels(processor, train, str(tmp_path / "out"), multi_label=False) == ["neg", "pos"]


def test_user_processor_module_by_name(tmp_path, clean_registry, monkeypatch):
    write(tmp_path, "named_user_processors.py", USER_MODULE.format(name="named_lines"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import_processor_module("named_user_processors")
    assert "named_lines" in registered_processors()
    monkeypatch.delitem(__import__("sys").modules, "named_user_processors")


def test_processor_module_errors_name_the_module(tmp_path, clean_registry):
    raises(["no_such_processor_module", "no module named"], import_processor_module, "no_such_processor_module")
    missing = str(tmp_path / "absent.py")
    raises([missing, "no such file"], import_processor_module, missing)
    broken = write(tmp_path, "broken.py", "import os\n\nraise RuntimeError('boom')\n")
    raises([broken, "RuntimeError: boom", f"{broken}:3"], import_processor_module, broken)
    bad_syntax = write(tmp_path, "bad_syntax.py", "x = 1\ndef f(:\n")
    raises([bad_syntax, "SyntaxError", f"{bad_syntax}:2"], import_processor_module, bad_syntax)
    bad_import = write(tmp_path, "bad_import.py", "import no_such_dependency_xyz\n")
    raises([bad_import, "no_such_dependency_xyz", "ModuleNotFoundError"], import_processor_module, bad_import)


def test_registry_errors(clean_registry):
    message = raises(["unknown processor 'nope'"], get_processor, "nope")
    for name in ["cola", "csv", "jsonl", "mnli", "mrpc", "tsv", "xnli"]:
        assert name in message
    assert set(registered_processors()) >= {"cola", "csv", "jsonl", "mnli", "mrpc", "tsv", "xnli"}

    @register_processor("Twice")
    class First(processors.TsvProcessor):
        pass

    assert register_processor("twice")(First) is First  # the same class again is fine
    assert get_processor("TWICE").name == "twice"

    class Second(processors.TsvProcessor):
        pass

    raises(["'twice' is already taken", "First", "Second"], register_processor("twice"), Second)
    raises(["not a subclass of processors.DataProcessor"], register_processor("plain"), object)
    assert "plain" not in registered_processors()


# --- labels ----------------------------------------------------------------------------------


def examples(*labels, path="train.tsv"):
    return [InputExample(f"train-{i}", f"text {i}", label=label, source=f"{path}:{i + 2}")
            for i, label in enumerate(labels)]


def test_label_map_round_trip(tmp_path):
    path = save_label_map(["b", "a", "中"], str(tmp_path / "out"), multi_label=True)
    assert path == os.path.join(str(tmp_path / "out"), "label_map.json")
    with open(path, encoding="utf-8") as reader:
        assert json.load(reader) == {"labels": ["b", "a", "中"], "multi_label": True}
    assert load_label_map(str(tmp_path / "out")) == (["b", "a", "中"], True)
    assert [name for name in os.listdir(str(tmp_path / "out"))] == ["label_map.json"]  # no temporary left


def test_load_label_map_errors_name_the_file(tmp_path):
    raises([os.path.join(str(tmp_path), "label_map.json"), "no such file"], load_label_map, str(tmp_path))
    write(tmp_path, "label_map.json", '{"labels": ["a",\n')
    raises(["label_map.json, line 2", "invalid JSON"], load_label_map, str(tmp_path))
    write(tmp_path, "label_map.json", '{"labels": "a"}')
    raises(["label_map.json", "non-empty list"], load_label_map, str(tmp_path))
    write(tmp_path, "label_map.json", '["a", "b"]')
    raises(["label_map.json", "JSON object"], load_label_map, str(tmp_path))


def test_resolve_labels_derives_saves_and_reuses(tmp_path):
    output_dir = str(tmp_path / "out")
    tsv = get_processor("tsv")
    assert resolve_labels(tsv, examples("pos", "neg", "pos"), output_dir, multi_label=False) == ["neg", "pos"]
    assert load_label_map(output_dir) == (["neg", "pos"], False)
    # A later run keeps the saved ids even if its training data would sort differently...
    save_label_map(["pos", "neg"], output_dir)
    assert resolve_labels(tsv, examples("neg"), output_dir, multi_label=False) == ["pos", "neg"]
    assert resolve_labels(tsv, None, output_dir, multi_label=False) == ["pos", "neg"]  # e.g. predicting only
    # ...but training data with a label it lacks is an error naming the example and the label map.
    raises(["train.tsv:3", "label 'meh'", "label_map.json"],
           resolve_labels, tsv, examples("pos", "meh"), output_dir, False)
    raises(["label_map.json", "multi_label=False", "multi_label=True"], resolve_labels, tsv, None, output_dir, True)
    # A processor with fixed labels uses them and writes nothing.
    fixed_dir = str(tmp_path / "fixed")
    assert resolve_labels(get_processor("mrpc"), examples("1", "0"), fixed_dir, False) == ["0", "1"]
    assert not os.path.exists(fixed_dir)
    raises(["train.tsv:2", "label '2'"], resolve_labels, get_processor("mrpc"), examples("2"), fixed_dir, False)
    raises(["no fixed labels", "no training examples"], resolve_labels, tsv, [], str(tmp_path / "empty"), False)


def test_labels_from_examples_and_check_labels():
    assert labels_from_examples(examples("b", ["c", "a"], None, "b")) == ["a", "b", "c"]
    raises(["train.tsv", "no labels"], labels_from_examples, examples(None, None))
    check_labels(examples("a", None, ["a", "b"]), ["a", "b"])  # None passes
    raises(["train.tsv:3: label 'x' is not in the label set ['a', 'b']"],
           check_labels, examples("a", "x", "y"), ["a", "b"])
    raises(["train.tsv:2", "label 'c'"], check_labels, examples(["a", "c"]), ["a", "b"])  # every label checked


# --- bad input: the message names the file and the line ---------------------------------------


def test_missing_data_file_names_the_path(tmp_path):
    raises([os.path.join(str(tmp_path), "train.tsv"), "no such file", "'tsv'"],
           get_processor("tsv").get_train_examples, str(tmp_path))
    raises([os.path.join(str(tmp_path), "dev.json"), "dev.jsonl", "no such file"],
           get_processor("jsonl").get_dev_examples, str(tmp_path))
    missing_dir = str(tmp_path / "nowhere")
    raises([missing_dir, "does not exist"], get_processor("mrpc").get_test_examples, missing_dir)


def test_wrong_number_of_columns(tmp_path):
    write(tmp_path, "train.tsv", rows(["text_a", "label"], ["fine", "x"], ["too", "many", "columns"]))
    raises(["train.tsv:3", "expected 2 columns", "found 3"], get_processor("tsv").get_train_examples, str(tmp_path))
    write(tmp_path, "train.tsv", rows(["text_a", "label"], ["fine", "x"]) + "spaces instead of tabs\n")
    raises(["train.tsv:3", "found 1", "tabs"], get_processor("tsv").get_train_examples, str(tmp_path))
    write(tmp_path, "train.csv", "x,y\nonly\n")
    raises(["train.csv:2", "expected 2 or 3 columns", "found 1"],
           get_processor("csv", ProcessorOptions(has_header=False)).get_train_examples, str(tmp_path))
    write(tmp_path, "dev.tsv", rows(["src", "1", "", "ok"], ["src", "1", "short"]))
    raises(["dev.tsv:2", "expected 4 columns", "found 3"], get_processor("cola").get_dev_examples, str(tmp_path))


def test_missing_header_column(tmp_path):
    write(tmp_path, "train.csv", "cat,label,review\nbooks,1,good\n")
    raises(["train.csv:1", "no column 'text_a'", "['cat', 'label', 'review']"],
           get_processor("csv").get_train_examples, str(tmp_path))
    write(tmp_path, "dev.csv", "review,category\ngood,books\n")
    raises(["dev.csv:1", "no column 'label'", "['review', 'category']"],
           get_processor("csv", ProcessorOptions(text_a_column="review")).get_dev_examples, str(tmp_path))


def test_empty_text_a(tmp_path):
    write(tmp_path, "train.tsv", rows(["label", "text_a"], ["x", "ok"], ["x", "ok"], ["y", "  "]))
    raises(["train.tsv:4", "empty text_a"], get_processor("tsv").get_train_examples, str(tmp_path))
    write(tmp_path, "train.json", jsonl({"text_a": "ok", "label": 1}, {"text_a": None, "label": 2}))
    raises(["train.json:2", "empty text_a"], get_processor("jsonl").get_train_examples, str(tmp_path))


def test_empty_label_in_train_and_dev_but_not_test(tmp_path):
    text = rows(["text_a", "label"], ["ok", "x"], ["no label", ""])
    for name in ["train.tsv", "dev.tsv", "test.tsv"]:
        write(tmp_path, name, text)
    processor = get_processor("tsv")
    raises(["train.tsv:3", "empty label"], processor.get_train_examples, str(tmp_path))
    raises(["dev.tsv:3", "empty label"], processor.get_dev_examples, str(tmp_path))
    assert [e.label for e in processor.get_test_examples(str(tmp_path))] == ["x", None]
    write(tmp_path, "train.tsv", rows(["text_a", "label"], ["ok", "x"], ["separators only", " , ,"]))
    raises(["train.tsv:3", "empty label"],
           get_processor("tsv", ProcessorOptions(multi_label=True)).get_train_examples, str(tmp_path))


@pytest.mark.parametrize("name, file_name, good, line", [
    ("tsv", "train.tsv", "text_a\tlabel\nok\tx\nok\tx\n", 4),
    ("csv", "train.csv", "text_a,label\nok,x\n\"two\nlines\",x\n", 5),
    ("jsonl", "train.json", '{"text_a": "ok", "label": "x"}\n\n', 3),
])
def test_non_utf8_byte_names_the_line(tmp_path, name, file_name, good, line):
    path = write(tmp_path, file_name, good, bom=True)
    with open(path, "ab") as writer:
        writer.write(b"caf\xe9\tx\n" if name == "tsv" else b"caf\xe9,x\n")
    raises([f"{file_name}:{line}", "0xe9", "UTF-8"], get_processor(name).get_train_examples, str(tmp_path))


def test_bad_json_lines(tmp_path):
    processor = get_processor("jsonl")
    write(tmp_path, "train.json", '{"text_a": "ok", "label": "x"}\n{"text_a": "cut", "label\n')
    raises(["train.json:2", "not valid JSON"], processor.get_train_examples, str(tmp_path))
    write(tmp_path, "train.json", '{"text_a": "ok", "label": "x"}\n\n["text_a", "x"]\n')
    raises(["train.json:3", "expected a JSON object", "an array"], processor.get_train_examples, str(tmp_path))
    write(tmp_path, "train.json", jsonl({"text_a": "ok", "label": "x"}, {"sentence": "s", "label": "x"}))
    raises(["train.json:2", "no field 'text_a'", "['label', 'sentence']"], processor.get_train_examples, str(tmp_path))
    write(tmp_path, "train.json", jsonl({"text_a": "ok", "label": "x"}, {"text_a": "no label"}))
    raises(["train.json:2", "no field 'label'"], processor.get_train_examples, str(tmp_path))
    write(tmp_path, "train.json", jsonl({"text_a": "ok", "label": {"x": 1}}))
    raises(["train.json:1", "an object"], processor.get_train_examples, str(tmp_path))


def test_unclosed_csv_quote_names_the_row(tmp_path):
    write(tmp_path, "train.csv", 'text_a,label\nok,x\n"never closed,x\nmore,y\n')
    raises(["train.csv:3", "never closed"], get_processor("csv").get_train_examples, str(tmp_path))


# --- suspicious data: read, with a warning naming the file and the line -----------------------


def test_repeated_header_row_is_skipped_with_a_warning(tmp_path, caplog):
    """Concatenated files repeat the header; it must not become an example of a class named "label"."""
    path = write(tmp_path, "train.tsv", rows(["label", "text_a"], ["pos", "good"], ["label", "text_a"], ["neg", "bad"]))
    assert [e.label for e in get_processor("tsv").get_train_examples(str(tmp_path))] == ["pos", "neg"]
    assert f"{path}:3" in caplog.text and "header" in caplog.text
    path = write(tmp_path, "dev.csv", "text_a,label\ngood,pos\n text_a , label\nbad,neg\n")
    assert [e.text_a for e in get_processor("csv").get_dev_examples(str(tmp_path))] == ["good", "bad"]
    assert f"{path}:3" in caplog.text
    path = write(tmp_path, "fewshot.tsv", "text\tlabel\nthis is good\tpos\n")
    assert [e.label for e in processors.read_text_label_file(path)] == ["pos"]
    assert f"{path}:1" in caplog.text


def test_jsonl_numeric_labels_are_one_class_whatever_their_spelling(tmp_path, caplog):
    write(tmp_path, "train.json", jsonl({"text_a": "a", "label": 1}, {"text_a": "b", "label": 1.0},
                                        {"text_a": "c", "label": "1"}, {"text_a": "d", "label": 0},
                                        {"text_a": "e", "label": -0.0}, {"text_a": "f", "label": 2.5}))
    train = get_processor("jsonl").get_train_examples(str(tmp_path))
    assert [e.label for e in train] == ["1", "1", "1", "0", "0", "2.5"]
    assert labels_from_examples(train) == ["0", "1", "2.5"]
    assert "train.json:6" in caplog.text and "2.5" in caplog.text and "whole number" in caplog.text
    write(tmp_path, "dev.json", jsonl({"text_a": "a", "label": [1.0, 2]}))
    multi = get_processor("jsonl", ProcessorOptions(multi_label=True))
    assert multi.get_dev_examples(str(tmp_path))[0].label == ["1", "2"]


def test_labels_that_look_like_one_class_are_warned(caplog):
    train = examples("Pos", "pos", "neg", "1", "1.0", "neg")
    assert labels_from_examples(train) == ["1", "1.0", "Pos", "neg", "pos"]  # still distinct classes...
    assert "train.tsv:3" in caplog.text and "'pos'" in caplog.text and "train.tsv:2" in caplog.text  # ...but named
    assert "train.tsv:6" in caplog.text and "'1.0'" in caplog.text
    assert "'neg'" not in caplog.text


def test_one_class_training_data(tmp_path, caplog):
    """A softmax over one class gives it probability 1 whatever the text: an error, not a model."""
    tsv = get_processor("tsv")
    raises(["train.tsv", "one class", "'pos'"], resolve_labels, tsv, examples("pos", "pos"), str(tmp_path / "a"), False)
    assert not os.path.exists(tmp_path / "a" / "label_map.json")
    # A label set of several classes, but training data of one of them: a warning.
    assert resolve_labels(get_processor("mrpc"), examples("1", "1"), None, False) == ["0", "1"]
    assert "train.tsv" in caplog.text and "only class '1'" in caplog.text
    # Multi-label: a label on in every training example is learnt as always on.
    caplog.clear()
    assert resolve_labels(tsv, examples(["a"], ["a", "b"]), str(tmp_path / "m"), True) == ["a", "b"]
    assert "'a'" in caplog.text and "every training example" in caplog.text and "'b'" not in caplog.text


# --- the real MRPC files ---------------------------------------------------------------------


def test_real_mrpc_files():
    data_dir = os.path.join(SHARED_DATA, "mrpc")
    if not os.path.exists(os.path.join(data_dir, "train.tsv")):
        pytest.skip(f"{data_dir} is absent (the real MRPC files live in ../shared/data or BERT_SHARED_DATA)")
    processor = get_processor("mrpc")
    train = processor.get_train_examples(data_dir)
    dev = processor.get_dev_examples(data_dir)
    # GLUE's MRPC train.tsv holds 3,668 pairs and dev.tsv 408: together the 4,076 pairs of the
    # original MSR paraphrase training set.
    assert (len(train), len(dev), len(train) + len(dev)) == (3668, 408, 4076)
    assert {e.label for e in train + dev} == {"0", "1"}
    assert not train[0].text_a.startswith("\ufeff")  # the byte order mark is not text
    # A sentence opening a double quote it never closes is read as it is, not merged with later rows.
    assert dev[0].text_b == '"The foodservice pie business does not fit our long-term growth strategy.'
    assert len(processor.get_test_examples(data_dir)) == 1725
