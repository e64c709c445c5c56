"""The official reading-comprehension metrics for any predictions file, as the official scripts print them.

  python evaluate_squad.py DATA.json PREDICTIONS.json [--version=1.1|2.0|cmrc] [--na_prob_file=null_odds.json]

Prints {"exact_match": ..., "f1": ...} (plus HasAns/NoAns and best thresholds for 2.0, the average for cmrc).
"""
import argparse
import json
import sys

from bert import files, squad
from bert.errors import UserInputError


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_file")
    parser.add_argument("prediction_file")
    parser.add_argument("--version", choices=["1.1", "2.0", "cmrc"], default="1.1")
    parser.add_argument("--na_prob_file", help="2.0: null odds per question (run_squad's null_odds.json)")
    args = parser.parse_args()
    try:
        examples = squad.read_squad_file(args.data_file, version_2=args.version == "2.0")
        predictions = _read_answers(args.prediction_file)
        null_odds = _read_answers(args.na_prob_file) if args.na_prob_file else None
    except UserInputError as error:
        sys.exit(f"error: {error}")
    print(json.dumps(squad.evaluate(examples, predictions, args.version, null_odds)))


def _read_answers(path):
    """A predictions or null-odds file: a JSON object keyed by question id."""
    value = files.read_json(path)
    if not isinstance(value, dict):
        raise UserInputError(f"{path}: expected a JSON object mapping question ids to answers")
    return value


if __name__ == "__main__":
    main()
