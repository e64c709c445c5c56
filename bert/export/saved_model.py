"""The SavedModel: a trained output folder exported as a version folder TensorFlow Serving watches.

`export_saved_model(model_dir, export_dir)` reads the folder (bert.model_folder.TrainedModel), builds
the serving graph in tf.compat.v1 graph mode with the task's exporter (exporters.EXPORTERS) on the
in-graph tokenization (graph_tokenization.TextEncoder), restores the checkpoint with a Saver
(`restore`) and writes `export_dir/<version>/` (saved_model.pb, variables/, assets/) with
tf.compat.v1.saved_model.Builder: the next free integer, written under a temporary name and renamed
when complete (`_publish`). `version_numbers` and `resolve_saved_model` find versions again.
"""
import json
import os
import re
import shutil

import tensorflow as tf

from bert import files
from bert.errors import UserInputError
from bert.export.exporters import EXPORTERS, SIGNATURE_IDS, SIGNATURE_TEXT, SIGNATURE_TOKENIZE  # noqa: F401
from bert.export.graph_tokenization import TextEncoder, write_vocab_asset
from bert.model_folder import LABEL_MAP_FILE, MODEL_INFO_FILE, TrainedModel

tf1 = tf.compat.v1

def version_numbers(export_dir):
    """The integer version folders under export_dir, sorted."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))


def resolve_saved_model(path):
    """A SavedModel folder from itself or from an export folder (its highest version)."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [v for v in version_numbers(path) if os.path.exists(os.path.join(path, str(v), "saved_model.pb"))]
    if not versions:
        raise UserInputError(f"{path}: no saved_model.pb here or in a version folder (1, 2, ...) below it")
    return os.path.join(path, str(versions[-1]))


def restore(session, checkpoint, variables):
    """Restores `variables` from checkpoint by name; a missing or misshapen one is named."""
    shapes = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
    missing = [v.op.name for v in variables if v.op.name not in shapes]
    if missing:
        raise UserInputError(f"{checkpoint}: the checkpoint lacks {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}; was it written by this model_info.json's task?")
    for v in variables:
        if list(shapes[v.op.name]) != v.shape.as_list():
            raise UserInputError(f"{checkpoint}: {v.op.name} has shape {shapes[v.op.name]} in the checkpoint but "
                                 f"{v.shape.as_list()} in the model; does bert_config.json match it?")
    tf1.train.Saver({v.op.name: v for v in variables}).restore(session, checkpoint)


def export_saved_model(model_dir, export_dir, support=None, checkpoint=None):
    """Exports a trained folder as export_dir/<next version>/; returns that folder.

    support: a SupportSet (few-shot models only, required there). checkpoint: a checkpoint to export
    instead of model_dir's best/ (or latest) one.
    """
    trained = TrainedModel.load(model_dir, checkpoint)
    exporter_class = EXPORTERS.get(trained.info.task)
    if exporter_class is None:
        raise UserInputError(f"{model_dir}/{MODEL_INFO_FILE}: task {trained.info.task!r} cannot be exported "
                             f"(exportable: {', '.join(sorted(EXPORTERS))})")
    exporter = exporter_class(trained, support)
    os.makedirs(export_dir, exist_ok=True)
    files.remove_stale_temporaries(export_dir)  # what a killed export left
    staging = files.temporary_name(os.path.join(export_dir, ".assets"))
    os.makedirs(staging)
    building = files.temporary_name(os.path.join(export_dir, ".export"))  # TF Serving skips it (not a number)
    try:
        graph = tf.Graph()
        with graph.as_default(), tf1.Session(graph=graph) as session:
            vocab_asset = os.path.join(staging, os.path.basename(trained.vocab_path))
            if trained.info.tokenizer == "sentencepiece":
                shutil.copyfile(trained.vocab_path, vocab_asset)
            else:
                write_vocab_asset(trained.tokenizer.vocab, vocab_asset)
            encoder = TextEncoder(trained, vocab_asset, exporter.text_pair)
            outputs = exporter.build(encoder)
            extra_assets = dict(exporter.assets())
            if exporter.label_map() is not None:
                extra_assets[LABEL_MAP_FILE] = json.dumps(exporter.label_map(), ensure_ascii=False, indent=2) + "\n"
            info = dict(trained.info.to_dict(), checkpoint=os.path.basename(trained.checkpoint))
            extra_assets[MODEL_INFO_FILE] = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
            for name, text in extra_assets.items():
                with open(os.path.join(staging, name), "w", encoding="utf-8") as writer:
                    writer.write(text)
                # An asset the graph does not read: listed so that the Builder copies it into assets/.
                tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS,
                                      tf.constant(os.path.join(staging, name), name="asset_" + re.sub(r"\W", "_", name)))
            if trained.info.tokenizer == "sentencepiece":  # read into the graph; kept beside it too
                tf1.add_to_collection(tf1.GraphKeys.ASSET_FILEPATHS, tf.constant(vocab_asset, name="asset_spm_model"))

            own = exporter.own_variables()
            restore(session, trained.checkpoint, [v for v in tf1.global_variables()
                                                  if v.op.name not in {o.op.name for o in own}])
            session.run([v.initializer for v in own])
            session.run(tf1.tables_initializer())
            exporter.after_restore(session, encoder)

            signatures = {name: tf1.saved_model.predict_signature_def(inputs, signature_outputs)
                          for name, (inputs, signature_outputs) in exporter.signatures(encoder, outputs).items()}
            builder = tf1.saved_model.Builder(building)
            builder.add_meta_graph_and_variables(
                session, [tf1.saved_model.tag_constants.SERVING], signature_def_map=signatures,
                assets_collection=tf1.get_collection(tf1.GraphKeys.ASSET_FILEPATHS),
                main_op=tf1.tables_initializer(), strip_default_attrs=True)
            builder.save()
        return _publish(building, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(building, ignore_errors=True)


def _publish(building, export_dir, attempts=100):
    """Renames the finished SavedModel to the next free version number (another exporter may race)."""
    for _ in range(attempts):
        versions = version_numbers(export_dir)
        target = os.path.join(export_dir, str(versions[-1] + 1 if versions else 1))
        try:
            os.rename(building, target)  # fails when target appeared meanwhile (non-empty)
            return target
        except OSError:
            if not os.path.exists(target):
                raise
    raise UserInputError(f"{export_dir}: could not claim a version folder")
