"""Label sets: taken from the task or the training data, kept in output_dir/label_map.json (written
and read by bert.model_folder) so that evaluation, prediction and later runs give every label the
same id."""
import os
from typing import List, Optional

from bert.errors import UserInputError
from bert.model_folder import LABEL_MAP_FILE, load_label_map, save_label_map  # noqa: F401  (re-exported)

_SHOWN_LABELS = 30  # longer label sets are cut short in messages


def example_labels(example) -> List[str]:
    """The labels of one example as a list (empty when unknown)."""
    if example.label is None:
        return []
    return list(example.label) if isinstance(example.label, (list, tuple)) else [example.label]


def labels_from_examples(examples) -> List[str]:
    """The sorted distinct labels of `examples`, multi-label lists flattened."""
    examples = list(examples)
    labels = sorted({label for example in examples for label in example_labels(example)})
    if not labels:
        where = _files_of(examples) or "the training data"
        raise UserInputError(f"{where}: no labels found in the training examples")
    return labels


def resolve_labels(processor, train_examples, output_dir, multi_label) -> List[str]:
    """The labels in id order.

    The processor's own labels when it has them (the training examples are checked against
    them); else the label map an earlier run left in `output_dir` (the training examples, when
    given, must not bring a label it lacks); else the labels of the training examples, saved to
    `output_dir` as label_map.json for the runs that follow.
    """
    fixed = processor.get_labels()
    if fixed is not None:
        fixed = list(fixed)
        if train_examples:
            check_labels(train_examples, fixed)
        return fixed
    path = os.path.join(output_dir, LABEL_MAP_FILE) if output_dir else None
    if path and os.path.exists(path):
        labels, saved_multi_label = load_label_map(output_dir)
        if saved_multi_label != bool(multi_label):
            raise UserInputError(f"{path}: written with multi_label={saved_multi_label}, but this run has "
                                 f"multi_label={bool(multi_label)}; use another output_dir or delete the file")
        if train_examples:
            try:
                check_labels(train_examples, labels)
            except UserInputError as error:
                raise UserInputError(f"{error} (the label set comes from {path}, written by an earlier "
                                     "run; delete it to take the labels from this training data)") from None
        return labels
    if not train_examples:
        where = f"no {LABEL_MAP_FILE} in {output_dir}" if output_dir else "no output_dir"
        raise UserInputError(f"the '{processor.name}' processor has no fixed labels, there are no training "
                             f"examples to take them from and {where}")
    labels = labels_from_examples(train_examples)
    if output_dir:
        save_label_map(labels, output_dir, multi_label)
    return labels


def check_labels(examples, labels) -> None:
    """Every label of every example (None passes) must be in `labels`."""
    known = set(labels)
    for example in examples:
        for label in example_labels(example):
            if label not in known:
                where = example.source or example.guid
                raise UserInputError(f"{where}: label {label!r} is not in the label set {_shown(labels)}")


def _shown(labels):
    labels = list(labels)
    if len(labels) <= _SHOWN_LABELS:
        return str(labels)
    return f"{str(labels[:_SHOWN_LABELS])[:-1]}, ... ({len(labels)} labels)]"


def _files_of(examples) -> Optional[str]:
    files = sorted({example.source.rsplit(":", 1)[0] for example in examples if example.source})
    return ", ".join(files) if files else None
