"""Label sets: taken from the task or the training data, kept in output_dir/label_map.json (written
and read by bert.model_folder) so that evaluation, prediction and later runs give every label the
same id."""
import collections
import math
import os
from typing import List, Optional

from absl import logging

from bert.errors import UserInputError
from bert.model_folder import LABEL_MAP_FILE, load_label_map, save_label_map  # noqa: F401  (re-exported)

_SHOWN_LABELS = 30  # longer label sets are cut short in messages
_SHOWN_WARNINGS = 10  # look-alike labels warned about one by one; more are counted


def example_labels(example) -> List[str]:
    """The labels of one example as a list (empty when unknown)."""
    if example.label is None:
        return []
    return list(example.label) if isinstance(example.label, (list, tuple)) else [example.label]


def labels_from_examples(examples) -> List[str]:
    """The sorted distinct labels of `examples`, multi-label lists flattened. Labels that differ only
    in case or surrounding spaces, or that spell one number two ways ("1", "1.0"), stay classes of
    their own, with a warning naming where each was first seen."""
    examples = list(examples)
    first_seen = {}  # label -> "path:line" of its first example, in the order of the examples
    for example in examples:
        for label in example_labels(example):
            first_seen.setdefault(label, example.source or example.guid)
    if not first_seen:
        where = _files_of(examples) or "the training data"
        raise UserInputError(f"{where}: no labels found in the training examples")
    _warn_look_alikes(first_seen)
    return sorted(first_seen)


def _look_alike_key(label):
    """Labels with the same key look like one class to a reader."""
    try:
        number = float(label)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number):
        return "number", number
    return "text", label.strip().casefold()


def _warn_look_alikes(first_seen):
    groups = {}
    for label in first_seen:
        groups.setdefault(_look_alike_key(label), []).append(label)
    warnings = [(label, group[0], kind) for (kind, _), group in groups.items() for label in group[1:]]
    for label, like, kind in warnings[:_SHOWN_WARNINGS]:
        how = "is the same number as" if kind == "number" else "differs only in case or surrounding spaces from"
        logging.warning("%s: label %r %s label %r (%s); they are two classes", first_seen[label], label, how, like,
                        first_seen[like])
    if len(warnings) > _SHOWN_WARNINGS:
        logging.warning("... and %d more labels like another label", len(warnings) - _SHOWN_WARNINGS)


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
            check_training_classes(train_examples, fixed, multi_label)
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
            check_training_classes(train_examples, labels, multi_label)
        return labels
    if not train_examples:
        where = f"no {LABEL_MAP_FILE} in {output_dir}" if output_dir else "no output_dir"
        raise UserInputError(f"the '{processor.name}' processor has no fixed labels, there are no training "
                             f"examples to take them from and {where}")
    labels = labels_from_examples(train_examples)
    check_training_classes(train_examples, labels, multi_label)
    if output_dir:
        save_label_map(labels, output_dir, multi_label)
    return labels


def check_training_classes(train_examples, labels, multi_label) -> None:
    """Training data that can only teach one answer. One class in a single-label set is an error: a
    softmax over one class gives it probability 1 whatever the text. Training examples of only one
    class of several, or (multi-label) a label that every example has, get a warning."""
    where = _files_of(train_examples) or "the training data"
    if multi_label:
        counts = collections.Counter(label for example in train_examples for label in set(example_labels(example)))
        always = [label for label in labels if counts[label] == len(train_examples)]
        if always:
            logging.warning("%s: every training example has the label(s) %s: the model learns to predict them "
                            "for every text", where, _shown(always))
        return
    if len(labels) == 1:
        raise UserInputError(f"{where}: the training data has one class ({labels[0]!r}); a classifier over one "
                             "class gives it probability 1 whatever the text: give examples of two classes or more")
    present = sorted({label for example in train_examples for label in example_labels(example)})
    if len(present) == 1:
        logging.warning("%s: the training data has only class %r of the %d in the label set: the model learns to "
                        "predict it for every text", where, present[0], len(labels))


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
