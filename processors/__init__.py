"""Data processors: files -> InputExamples, with a registry so scripts choose them by name.

    processor = get_processor("csv", ProcessorOptions(text_a_column="review"))
    train = processor.get_train_examples(data_dir)
    labels = resolve_labels(processor, train, output_dir, multi_label=False)

Built-in: tsv, csv, jsonl (columns chosen by name) and mrpc, cola, mnli, xnli (the layouts
google-research/bert reads); see processors/builtin.py. Your own: subclass DataProcessor,
decorate it with @register_processor("name") in a module, and pass that module (a name or a path
to a .py file) to import_processor_module (`--processor_module` in the scripts).
Every mistake in a data file is a bert.errors.UserInputError saying "path:line: what is wrong".
"""
from processors.base import DataProcessor, InputExample, ProcessorOptions
from processors.labels import (LABEL_MAP_FILE, check_labels, labels_from_examples, load_label_map,
                               resolve_labels, save_label_map)
from processors.registry import (get_processor, import_processor_module, register_processor,
                                 registered_processors)
from processors.fewshot_files import read_text_label_file, read_text_lines
from processors import builtin  # noqa: F401  (registers the built-in processors)
from processors.builtin import (ColaProcessor, CsvProcessor, JsonLinesProcessor, MnliProcessor,
                                MrpcProcessor, TsvProcessor, XnliProcessor)

__all__ = [
    "InputExample", "ProcessorOptions", "DataProcessor",
    "register_processor", "get_processor", "registered_processors", "import_processor_module",
    "labels_from_examples", "save_label_map", "load_label_map", "resolve_labels", "check_labels",
    "LABEL_MAP_FILE", "read_text_label_file", "read_text_lines",
    "TsvProcessor", "CsvProcessor", "JsonLinesProcessor", "MrpcProcessor", "ColaProcessor",
    "MnliProcessor", "XnliProcessor",
]
