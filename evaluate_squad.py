"""The official reading-comprehension metrics for any predictions file, as the official scripts print them.

  python evaluate_squad.py DATA.json PREDICTIONS.json [--version=1.1|2.0|cmrc] [--na_prob_file=null_odds.json]
                           [--na_prob_thresh=1.0]

Prints {"exact_match": ..., "f1": ...} (plus HasAns/NoAns and best thresholds for 2.0, the average for cmrc).
Each version follows its own official script (evaluate-v1.1.py, evaluate-v2.0.py, cmrc2018_evaluate.py);
answer offsets are never read, so any answer text counts whatever its answer_start.
"""
import argparse
import json
import math
import sys

from bert import files, squad
from bert.errors import UserInputError


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_file")
    parser.add_argument("prediction_file")
    parser.add_argument("--version", choices=["1.1", "2.0", "cmrc"], default="1.1")
    parser.add_argument("--na_prob_file", help="2.0: null odds per question (run_squad's null_odds.json)")
    parser.add_argument("--na_prob_thresh", type=float, default=1.0,
                        help="2.0: a question whose null odds exceed this is scored as answering \"\" "
                             "(evaluate-v2.0.py's --na-prob-thresh)")
    args = parser.parse_args()
    try:
        examples = squad.read_squad_file(args.data_file, version_2=args.version == "2.0")
        predictions = _read_answers(args.prediction_file)
        null_odds = _read_null_odds(args.na_prob_file) if args.na_prob_file else None
    except UserInputError as error:
        sys.exit(f"error: {error}")
    print(json.dumps(squad.evaluate(examples, predictions, args.version, null_odds, args.na_prob_thresh)))


def _read_answers(path):
    """A predictions file: a JSON object mapping each question id to its answer text."""
    answers = files.read_json(path, "predictions file", expect=dict)
    for qas_id, answer in answers.items():
        if not isinstance(answer, str):
            raise UserInputError(f"{path}: question {qas_id}: the answer should be a string, not "
                                 f"{type(answer).__name__}")
    return answers


def _read_null_odds(path):
    """A null-odds file: a JSON object mapping question ids to numbers (run_squad's null_odds.json)."""
    odds = files.read_json(path, "null-odds file", expect=dict)
    for qas_id, value in odds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise UserInputError(f"{path}: question {qas_id}: the null odds should be a number, not "
                                 f"{type(value).__name__ if not isinstance(value, float) else 'NaN'}")
    return odds


if __name__ == "__main__":
    main()
