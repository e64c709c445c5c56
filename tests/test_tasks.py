"""The task interface: every registered task implements all of it, each distance is defined once
(TF and numpy agree), unknown names are errors, and the scorers compute their metrics."""
import json

import numpy as np
import pytest
import tensorflow as tf

from bert import export, fewshot, heads, model_folder, squad, tasks
from bert.errors import UserInputError
from conftest import run_in_graph

INTERFACE = ("feature_shapes", "cache_key", "convert", "build", "from_info", "scorer")


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
def test_every_registered_task_implements_the_whole_interface(name):
    task_class = tasks.TASKS[name]
    assert task_class.name == name
    missing = [method for method in INTERFACE if getattr(task_class, method) is getattr(tasks.Task, method)]
    assert not missing, f"{name} lacks {missing}"


def test_registries_use_the_task_name_written_once():
    assert set(tasks.TASKS) == {"classification", "fewshot", "squad", "pretraining", "ner", "multitask"}
    for name, exporter in export.EXPORTERS.items():
        assert tasks.TASKS[name] is exporter.task_class
    with pytest.raises(ValueError, match="taken"):
        tasks.register_task(type("Again", (tasks.Task,), {"name": "fewshot"}))
    with pytest.raises(UserInputError, match="unknown task 'choice'"):
        tasks.task_class("choice")


@pytest.mark.parametrize("name", sorted(heads.DISTANCES))
def test_each_distance_has_tf_and_numpy_twins_that_agree(name):
    distance = heads.DISTANCES[name]
    rng = np.random.RandomState(3)
    queries, prototypes = rng.randn(6, 5).astype(np.float32), rng.randn(4, 5).astype(np.float32)
    logits, distances = run_in_graph(lambda: (distance.logits(tf.constant(queries), tf.constant(prototypes)),
                                              distance.distances(tf.constant(queries), tf.constant(prototypes))))
    params = distance.params_from(None)
    np.testing.assert_allclose(distance.np_logits(queries, prototypes, params), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(distance.np_distances(queries, prototypes), distances, rtol=1e-5, atol=1e-5)
    # The nearest prototype by the distance users see is the most likely class.
    assert (distances.argmin(-1) == logits.argmax(-1)).all()
    assert distance.shown


def test_an_unknown_distance_is_an_error_everywhere(tmp_path):
    with pytest.raises(UserInputError, match="unknown prototype distance 'manhattan'"):
        heads.get_distance("manhattan")
    with pytest.raises(UserInputError, match="manhattan"):
        tasks.FewShotTask(["a", "b"], None, 8, distance="manhattan")
    with pytest.raises(UserInputError, match="manhattan"):
        tasks.FewShotScorer(2, 1, 1, 10, 0, "manhattan")
    with pytest.raises(UserInputError, match="manhattan"):
        fewshot.FewShotConfig(distance="manhattan")
    (tmp_path / "model_info.json").write_text(json.dumps({"task": "fewshot", "distance": "manhattan"}))
    with pytest.raises(UserInputError, match="model_info.json: unknown distance 'manhattan'"):
        model_folder.ModelInfo.from_dir(str(tmp_path))


def test_classification_scorer_from_streamed_counts():
    scorer = tasks.ClassificationTask(["neg", "pos"], None, 8).scorer()
    report = scorer.score({"eval_loss": 0.5, "global_step": 7, "accuracy": 5 / 6,
                           "confusion_matrix": np.array([[3, 1], [0, 2]])})
    assert report["accuracy"] == pytest.approx(5 / 6) and report["global_step"] == 7
    assert report["per_class"]["neg"] == {"precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4}
    assert report["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))  # pos: precision 2/3, recall 1
    assert report["confusion_matrix"]["matrix"] == [[3, 1], [0, 2]]


def test_span_scorer_picks_the_official_metric_by_language():
    chinese = squad.SquadExample("q1", "t", "首都？", "北京是中国的首都。", [{"text": "北京", "answer_start": 0}])
    english = squad.SquadExample("q2", "t", "Which?", "Paris is the capital.", [{"text": "Paris", "answer_start": 0}])
    task = tasks.SpanTask(None, squad.WindowSettings(32, 8, 8))
    assert task.scorer().score([chinese], {"q1": "北京"})["eval_version"] == "cmrc"
    result = task.scorer().score([english], {"q2": "the Paris"})
    assert result["eval_version"] == "1.1" and result["exact_match"] == 100.0
    assert task.scorer(version_2_with_negative=True).score([english], {"q2": ""})["eval_version"] == "2.0"


def test_fewshot_scorer_uses_the_trained_cosine_scale():
    """The scale changes probabilities, never the argmax: both scorers agree on accuracy."""
    rng = np.random.RandomState(0)
    embeddings = rng.randn(40, 4)
    rows = fewshot.rows_by_class(np.repeat(np.arange(4), 10), range(4))
    plain = tasks.FewShotScorer(3, 2, 3, 50, 1, "cosine").score(embeddings, rows)
    scaled = tasks.FewShotScorer(3, 2, 3, 50, 1, "cosine", params={"scale": 3.0}).score(embeddings, rows)
    assert plain["accuracy"] == scaled["accuracy"] and plain["episodes"] == 50
