"""Extractive reading comprehension: SQuAD-format examples, windowed features, answers, official metrics.

Answers are located by character offset and mapped to word pieces through each piece's character
span (FullTokenizer.tokenize_with_offsets), so no language needs whitespace between words. A predicted
span is cut from the original context by those character offsets: the answer text is recovered
exactly as written (case, accents, spacing), which Google's get_final_text only approximates.
"""
import collections
import dataclasses
import math
import re
import string
from typing import List

from absl import logging

from bert import files
from bert.errors import UserInputError


@dataclasses.dataclass
class SquadExample:
    qas_id: str
    title: str
    question: str
    context: str
    answers: List[dict]  # [{"text", "answer_start" (None when absent)}]; the first one is trained on
    is_impossible: bool = False


def read_squad_file(path, version_2=False):
    """SquadExamples from a SQuAD-format JSON file. Malformed files are errors naming the article and
    question. Answer offsets are kept as they are: the official metrics read only answer texts (CMRC2018's
    dev set gives secondary answers answer_start -1), and training checks the first answer's offset itself
    (answer_recoverable), skipping a question whose first answer is not found there."""
    data = files.read_json(path, "SQuAD file")
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UserInputError(f"{path}: expected SQuAD format, an object with a 'data' list of articles")
    examples = []
    for article_index, article in enumerate(data["data"]):
        title = str(article.get("title", f"article {article_index}")) if isinstance(article, dict) else ""
        for paragraph in _field(path, article, "paragraphs", list, f"article '{title}'"):
            context = _field(path, paragraph, "context", str, f"article '{title}'")
            for qa in _field(path, paragraph, "qas", list, f"article '{title}'"):
                examples.append(_read_question(path, qa, title, context, version_2))
    if not examples:
        raise UserInputError(f"{path}: no questions (its 'data' list holds no article with a question)")
    unrecoverable = [e for e in examples if not answer_recoverable(e)]
    for example in unrecoverable[:20]:
        answer = example.answers[0]
        logging.warning("%s: question %s: the first answer %r is not at its offset %r", path, example.qas_id,
                        answer["text"], answer["answer_start"])
    if unrecoverable:
        logging.warning("%s: %d question(s) whose first answer does not match the context at its offset are "
                        "skipped in training", path, len(unrecoverable))
    return examples


def _field(path, obj, field, kind, where):
    """obj[field], which must be a `kind`; otherwise an error naming the file and `where`."""
    if not isinstance(obj, dict):
        raise UserInputError(f"{path}: {where}: expected an object with a field '{field}', found "
                             f"{type(obj).__name__}")
    if field not in obj:
        raise UserInputError(f"{path}: {where}: missing field '{field}'")
    if not isinstance(obj[field], kind) or isinstance(obj[field], bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise UserInputError(f"{path}: {where}: field '{field}' should be a {names}")
    return obj[field]


def _read_question(path, qa, title, context, version_2):
    """One question of a paragraph as a SquadExample. Every answer needs its text; answer_start, when
    given, must be an integer, but need not point at the text."""
    qas_id = str(qa.get("id", "?")) if isinstance(qa, dict) else "?"
    where = f"article '{title}', question {qas_id}"
    _field(path, qa, "id", (str, int), where)
    question = _field(path, qa, "question", str, where)
    impossible = bool(qa.get("is_impossible", False)) if version_2 else False
    answers = []
    for answer in [] if impossible else _field(path, qa, "answers", list, where):
        text = _field(path, answer, "text", str, where)
        start = _field(path, answer, "answer_start", int, where) if "answer_start" in answer else None
        answers.append({"text": text, "answer_start": start})
    if not impossible and not answers:
        raise UserInputError(f"{path}: {where}: no answers (set is_impossible for SQuAD 2.0)")
    return SquadExample(qas_id, title, question, context, answers, impossible)


def answer_recoverable(example):
    """Whether training can use the example: it is unanswerable, or its first answer's text is found in
    the context at its answer_start (the other answers serve evaluation alone, which reads no offsets)."""
    if example.is_impossible:
        return True
    answer = example.answers[0]
    start = answer["answer_start"]
    if start is None or start < 0:
        return False
    return example.context[start:start + len(answer["text"])].strip() == answer["text"].strip()


@dataclasses.dataclass
class WindowSettings:
    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64


def example_features(example, tokenizer, settings, is_training):
    """One example -> its windowed features: [CLS] question [SEP] context window [SEP].

    Every feature carries the character span of each context piece (-1 elsewhere) and whether the
    piece has its most context in this window, for turning predicted spans into text.
    """
    query = tokenizer.tokenize(example.question)
    if len(query) > settings.max_query_length:
        logging.log_first_n(logging.WARNING, "article '%s', question %s: %d question pieces, truncated to "
                            "max_query_length=%d", 20, example.title, example.qas_id, len(query),
                            settings.max_query_length)
        query = query[:settings.max_query_length]
    pieces, starts, ends = tokenizer.tokenize_with_offsets(example.context)
    answer_start = answer_end = None
    if is_training and not example.is_impossible:
        answer = example.answers[0]
        first, last = answer["answer_start"], answer["answer_start"] + len(answer["text"])
        covering = [i for i, (s, e) in enumerate(zip(starts, ends)) if s < last and e > first]
        if covering:
            answer_start, answer_end = covering[0], covering[-1]
    room = settings.max_seq_length - len(query) - 3
    if room <= 0:
        raise UserInputError(f"max_seq_length={settings.max_seq_length} leaves no room for the context after a "
                             f"{len(query)}-piece question (article '{example.title}', question {example.qas_id})")
    windows, offset = [], 0
    while True:
        length = min(room, len(pieces) - offset)
        windows.append((offset, length))
        if offset + length >= len(pieces):
            break
        offset += min(length, settings.doc_stride)

    features = []
    for window_index, (offset, length) in enumerate(windows):
        tokens = ["[CLS]"] + query + ["[SEP]"] + pieces[offset:offset + length] + ["[SEP]"]
        context_begin = len(query) + 2
        span_starts = [-1] * context_begin + starts[offset:offset + length] + [-1]
        span_ends = [-1] * context_begin + ends[offset:offset + length] + [-1]
        max_context = [0] * context_begin + [int(_is_max_context(windows, window_index, offset + i))
                                             for i in range(length)] + [0]
        input_ids = tokenizer.convert_tokens_to_ids(tokens)
        pad = settings.max_seq_length - len(input_ids)
        feature = {"input_ids": input_ids + [0] * pad, "input_mask": [1] * len(input_ids) + [0] * pad,
                   "segment_ids": [0] * context_begin + [1] * (length + 1) + [0] * pad,
                   "token_start_chars": span_starts + [-1] * pad,
                   "token_end_chars": span_ends + [-1] * pad, "token_is_max_context": max_context + [0] * pad}
        if is_training:
            start = end = 0  # [CLS]: no answer in this window (or none at all)
            if answer_start is not None and offset <= answer_start and answer_end < offset + length:
                start, end = answer_start - offset + context_begin, answer_end - offset + context_begin
            feature["start_positions"], feature["end_positions"] = start, end
        features.append(feature)
    return features


def _is_max_context(windows, window_index, position):
    """Whether `position` has more context (the smaller of its left and right context, plus a
    small bonus for longer windows) in window `window_index` than in any other window holding it."""
    best_score, best_window = None, None
    for index, (offset, length) in enumerate(windows):
        if not offset <= position < offset + length:
            continue
        score = min(position - offset, offset + length - 1 - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_window = score, index
    return best_window == window_index


def best_answers(examples, features, results, n_best_size=20, max_answer_length=30, version_2=False,
                 null_score_diff_threshold=0.0):
    """Predicted answers from span logits.

    features: {name: array [num_features, ...]} with example_index, token_start_chars, token_end_chars,
    token_is_max_context; results: (start_logits, end_logits) arrays [num_features, seq].
    Returns (predictions {id: text}, nbest {id: [...]}, null_odds {id: score diff} (SQuAD 2.0)).
    """
    start_logits, end_logits = results
    by_example = collections.defaultdict(list)
    for index, example_index in enumerate(features["example_index"]):
        by_example[int(example_index)].append(index)
    predictions, nbest, null_odds = {}, {}, {}
    for example_index, example in enumerate(examples):
        candidates, null_score = [], None
        for index in by_example.get(example_index, []):
            starts, ends = start_logits[index], end_logits[index]
            if version_2:
                score = starts[0] + ends[0]
                null_score = score if null_score is None else min(null_score, score)
            char_starts, char_ends = features["token_start_chars"][index], features["token_end_chars"][index]
            max_context = features["token_is_max_context"][index]
            top_starts = sorted(range(len(starts)), key=lambda i: -starts[i])[:n_best_size]
            top_ends = sorted(range(len(ends)), key=lambda i: -ends[i])[:n_best_size]
            for s in top_starts:
                if char_starts[s] < 0 or not max_context[s]:
                    continue
                for e in top_ends:
                    if char_starts[e] < 0 or e < s or e - s + 1 > max_answer_length:
                        continue
                    candidates.append((float(starts[s] + ends[e]), float(starts[s]), float(ends[e]),
                                       int(char_starts[s]), int(char_ends[e])))
        candidates.sort(key=lambda c: -c[0])
        entries, seen = [], set()
        for score, start_logit, end_logit, first, last in candidates:
            text = example.context[first:last]
            if text in seen:
                continue
            seen.add(text)
            entries.append({"text": text, "start_logit": start_logit, "end_logit": end_logit, "score": score})
            if len(entries) >= n_best_size:
                break
        if version_2 and null_score is not None:
            entries.append({"text": "", "start_logit": null_score / 2, "end_logit": null_score / 2,
                            "score": float(null_score)})
            entries.sort(key=lambda c: -c["score"])
        if not entries:
            entries = [{"text": "", "start_logit": 0.0, "end_logit": 0.0, "score": 0.0}]
        top = max(c["score"] for c in entries)
        weights = [math.exp(c["score"] - top) for c in entries]
        for entry, weight in zip(entries, weights):
            entry["probability"] = weight / sum(weights)
            del entry["score"]
        nbest[example.qas_id] = entries
        best_text = next((c for c in entries if c["text"]), None)
        if version_2:
            best_score = best_text["start_logit"] + best_text["end_logit"] if best_text else float("-inf")
            diff = float(null_score - best_score) if null_score is not None else 0.0
            null_odds[example.qas_id] = diff
            predictions[example.qas_id] = "" if best_text is None or diff > null_score_diff_threshold \
                else best_text["text"]
        else:
            predictions[example.qas_id] = best_text["text"] if best_text else ""
    return predictions, nbest, null_odds


# --- metrics -------------------------------------------------------------------------------------
def normalize_answer(text):
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction_tokens, gold_tokens):
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(prediction_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction, gold):
    """SQuAD v1.1's F1: 0 whenever no token is shared, so an empty answer scores 0 even against an
    empty gold (a gold such as "." normalises to nothing)."""
    return _f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def squad2_f1(prediction, gold):
    """SQuAD v2.0's F1: as v1.1's, except that an empty prediction or gold scores 1 when both are empty."""
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    return _f1(prediction_tokens, gold_tokens)


def gold_answers(example, version):
    """The gold texts the official script of `version` compares a prediction with: v1.1 and CMRC2018
    take every answer; v2.0 drops answers that normalise to nothing, and a question left with none
    (unanswerable) has the single gold answer ""."""
    texts = [answer["text"] for answer in example.answers]
    if version != "2.0":
        return texts
    return [text for text in texts if normalize_answer(text)] or [""]


# CMRC2018's punctuation list; its "……" is two characters, which no single character equals, so "…" is kept.
CMRC_PUNCTUATION = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』") | {"……"}


def _without_cmrc_punctuation(text):
    """What CMRC2018's EM compares: the text lower-cased and stripped, without its punctuation marks."""
    return "".join(c for c in text.lower().strip() if c not in CMRC_PUNCTUATION)


def _cmrc_segments(text):
    """CMRC2018's F1 segments: the text lower-cased, stripped and rid of its punctuation marks first (so
    "v-22" is the one word "v22"), then each CJK character (U+4E00..U+9FA5) on its own and each run of
    other characters split into words."""
    segments, run = [], []
    for char in _without_cmrc_punctuation(text):
        if "\u4e00" <= char <= "\u9fa5":
            segments.extend(_treebank_words("".join(run)))
            run.clear()
            segments.append(char)
        else:
            run.append(char)
    segments.extend(_treebank_words("".join(run)))
    return segments


# Penn Treebank word splitting as NLTK's word_tokenize (Apache-2.0) does it (the tokenizer of CMRC2018's
# script): rewrites, in this order, that pad tokens with spaces, then a split on whitespace. NLTK's
# sentence splitting before it is not reproduced; it matters only for a run holding an abbreviation
# with periods ("t.f. gilbert") followed by more words, 6 of the 4,658 runs in CMRC2018's dev and trial
# contexts.
_OPENING_QUOTES = [
    (r"([«“‘„]|`+)", r" \1 "),
    (r'^"', "``"),
    (r"(``)", r" \1 "),
    (r"""([ (\[{<])("|'')""", r"\1 `` "),
    (r"(?i)(')(?!re|ve|ll|m|t|s|d)(\w)\b", r"\1 \2"),
]
_CLOSERS = "\\])}>\"'»”’"
_PUNCTUATION_MARKS = [
    (r"([^.])(\.)([" + _CLOSERS + r" ]*)\s*$", r"\1 \2 \3 "),  # the final period
    (r"([:,])([^\d])", r" \1 \2"),  # a comma or colon not inside a number
    (r"([:,])$", r" \1 "),
    (r"\.\.\.", " ... "),
    (r"[;@#$%&]", r" \g<0> "),
    (r"[?!]", r" \g<0> "),
    (r"([^'])' ", r"\1 ' "),
    (r"[\][(){}<>]", r" \g<0> "),
    (r"--", " -- "),
]
_CLOSING_QUOTES_AND_CLITICS = [
    (r"([»”’])", r" \1 "),
    (r'"', " '' "),
    (r"(\S)('')", r"\1 \2 "),
    (r"([^' ])('[sSmMdD]|') ", r"\1 \2 "),
    (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    (r"(?i)\b(can)(not)\b", r" \1 \2 "),
    (r"(?i)\b(d)('ye)\b", r" \1 \2 "),
    (r"(?i)\b(gim|lem)(me)\b", r" \1 \2 "),
    (r"(?i)\b(gon)(na)\b", r" \1 \2 "),
    (r"(?i)\b(got)(ta)\b", r" \1 \2 "),
    (r"(?i)\b(mor)('n)\b", r" \1 \2 "),
    (r"(?i)\b(wan)(na)\s", r" \1 \2 "),
    (r"(?i) ('t)(is)\b", r" \1 \2 "),
    (r"(?i) ('t)(was)\b", r" \1 \2 "),  # after 'tis, which may put the space before it
]
_TREEBANK_RULES = [[(re.compile(pattern), replacement) for pattern, replacement in rules]
                   for rules in (_OPENING_QUOTES, _PUNCTUATION_MARKS, _CLOSING_QUOTES_AND_CLITICS)]


def _treebank_words(text):
    """Words of a run of non-CJK text by the Penn Treebank conventions: punctuation, brackets and clitics
    ('s, n't) split off, a period only at the end, double quotes as `` and ''."""
    opening, marks, closing = _TREEBANK_RULES
    for pattern, replacement in opening + marks:
        text = pattern.sub(replacement, text)
    text = f" {text} "
    for pattern, replacement in closing:
        text = pattern.sub(replacement, text)
    return text.split()


def cmrc_exact(prediction, gold):
    return float(_without_cmrc_punctuation(prediction) == _without_cmrc_punctuation(gold))


def cmrc_f1(prediction, gold):
    pred, ref = _cmrc_segments(prediction), _cmrc_segments(gold)
    longest = 0
    table = [0] * (len(ref) + 1)
    for p in pred:  # longest common contiguous run of segments
        previous = 0
        for j in range(1, len(ref) + 1):
            current = table[j]
            table[j] = previous + 1 if p == ref[j - 1] else 0
            longest = max(longest, table[j])
            previous = current
    if longest == 0:
        return 0.0
    precision, recall = longest / len(pred), longest / len(ref)
    return 2 * precision * recall / (precision + recall)


METRICS = {"1.1": (squad_exact, squad_f1), "2.0": (squad_exact, squad2_f1), "cmrc": (cmrc_exact, cmrc_f1)}


def evaluate(examples, predictions, version="1.1", null_odds=None, null_odds_threshold=1.0):
    """Official metrics x 100, each version as its own official script computes them. version "1.1",
    "2.0" (HasAns/NoAns splits and, with null_odds, the best threshold) or "cmrc" (CMRC2018's
    character-level EM and F1, and their average). With null_odds, v2.0 scores a question whose odds
    exceed null_odds_threshold (the official --na-prob-thresh, 1.0) as if it had answered "". A question
    without a prediction scores 0, as v1.1's and CMRC2018's scripts count it (v2.0's fails with a KeyError)."""
    exact_fn, f1_fn = METRICS[version]
    exact, f1, has_answer = {}, {}, {}
    for example in examples:
        golds = gold_answers(example, version)
        has_answer[example.qas_id] = bool(example.answers)  # v2.0's HasAns: any answer listed at all
        if example.qas_id not in predictions:
            logging.warning("no prediction for question %s: counted as wrong", example.qas_id)
            exact[example.qas_id] = f1[example.qas_id] = 0.0
            continue
        prediction = predictions[example.qas_id]
        exact[example.qas_id] = max(exact_fn(prediction, g) for g in golds)
        f1[example.qas_id] = max(f1_fn(prediction, g) for g in golds)
    ids = list(exact)
    if version != "2.0":
        result = _averages(ids, exact, f1)
        if version == "cmrc":
            result["average"] = (result["exact_match"] + result["f1"]) / 2
        return result
    thresholded_exact, thresholded_f1 = dict(exact), dict(f1)
    for qas_id in ids:
        if null_odds and qas_id in predictions and null_odds.get(qas_id, 0.0) > null_odds_threshold:
            thresholded_exact[qas_id] = thresholded_f1[qas_id] = float(not has_answer[qas_id])
    result = _averages(ids, thresholded_exact, thresholded_f1)
    for name, keep in (("HasAns", True), ("NoAns", False)):
        subset = [i for i in ids if has_answer[i] == keep]
        if subset:
            for key, value in _averages(subset, thresholded_exact, thresholded_f1).items():
                result[f"{name}_{'exact' if key == 'exact_match' else key}"] = value
    if null_odds:
        for name, scores in (("exact", exact), ("f1", f1)):
            best, threshold = _best_threshold(ids, scores, null_odds, has_answer, predictions)
            result[f"best_{name}"], result[f"best_{name}_thresh"] = best, threshold
    return result


def _averages(ids, exact, f1):
    """Mean EM and F1 x 100 over the questions `ids`."""
    return {"exact_match": 100.0 * sum(exact[i] for i in ids) / len(ids),
            "f1": 100.0 * sum(f1[i] for i in ids) / len(ids), "total": len(ids)}


def _best_threshold(ids, scores, null_odds, has_answer, predictions):
    """The null-odds threshold that maximises the score when every question above it answers "" (v2.0's
    find_best_thresh): from "" everywhere (each NoAns question right), questions are answered in order of
    increasing odds, a HasAns question adding its score, a NoAns one losing its point if it answers text."""
    score = current = float(sum(1 for i in ids if not has_answer[i]))
    best_threshold = 0.0
    for qas_id in sorted(ids, key=lambda i: null_odds.get(i, 0.0)):
        if has_answer[qas_id]:
            current += scores[qas_id]
        elif predictions.get(qas_id):
            current -= 1.0
        if current > score:
            score, best_threshold = current, null_odds.get(qas_id, 0.0)
    return 100.0 * score / len(ids), best_threshold


def language_of(examples):
    """"cmrc" when most contexts are Chinese, else "1.1"."""
    sample = "".join(e.context[:200] for e in examples[:50])
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in sample)
    return "cmrc" if sample and cjk > len(sample) * 0.3 else "1.1"
