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
    answers: List[dict]  # [{"text", "answer_start"}]; the first one is trained on
    is_impossible: bool = False


def read_squad_file(path, version_2=False):
    """SquadExamples from a SQuAD-format JSON file. Malformed files are errors naming the article and
    question; an answer that cannot be found at its offset is skipped and counted in the log."""
    data = files.read_json(path, "SQuAD file")
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UserInputError(f"{path}: expected SQuAD format, an object with a 'data' list of articles")
    examples, unrecoverable = [], 0
    for article_index, article in enumerate(data["data"]):
        title = str(article.get("title", f"article {article_index}")) if isinstance(article, dict) else ""

        def need(obj, field, kind, where):
            if not isinstance(obj, dict) or field not in obj:
                raise UserInputError(f"{path}: {where}: missing field '{field}'")
            if not isinstance(obj[field], kind):
                names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
                raise UserInputError(f"{path}: {where}: field '{field}' should be a {names}")
            return obj[field]

        for paragraph in need(article, "paragraphs", list, f"article '{title}'"):
            context = need(paragraph, "context", str, f"article '{title}'")
            for qa in need(paragraph, "qas", list, f"article '{title}'"):
                qas_id = str(qa.get("id", "?")) if isinstance(qa, dict) else "?"
                where = f"article '{title}', question {qas_id}"
                need(qa, "id", (str, int), where)
                question = need(qa, "question", str, where)
                impossible = bool(qa.get("is_impossible", False)) if version_2 else False
                answers = [] if impossible else need(qa, "answers", list, where)
                checked = []
                for answer in answers:
                    text = need(answer, "text", str, where)
                    start = need(answer, "answer_start", int, where)
                    if not 0 <= start <= len(context) - len(text):
                        raise UserInputError(f"{path}: {where}: answer_start {start} is outside the context "
                                             f"({len(context)} characters)")
                    checked.append({"text": text, "answer_start": start})
                if not impossible and not checked:
                    raise UserInputError(f"{path}: {where}: no answers (set is_impossible for SQuAD 2.0)")
                examples.append(SquadExample(qas_id, title, question, context, checked, impossible))
    for example in examples:
        for answer in example.answers:
            found = example.context[answer["answer_start"]:answer["answer_start"] + len(answer["text"])]
            if found.strip() != answer["text"].strip():
                unrecoverable += 1
                logging.warning("%s: question %s: the answer %r is not at its offset (found %r)", path,
                                example.qas_id, answer["text"], found)
                break
    if unrecoverable:
        logging.warning("%s: %d answer(s) do not match the context at their offset; those questions are "
                        "skipped in training", path, unrecoverable)
    return examples


def answer_recoverable(example):
    if example.is_impossible:
        return True
    answer = example.answers[0]
    found = example.context[answer["answer_start"]:answer["answer_start"] + len(answer["text"])]
    return found.strip() == answer["text"].strip()


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
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not prediction_tokens or not gold_tokens:  # SQuAD 2.0: empty against empty is a match
        return float(prediction_tokens == gold_tokens)
    return _f1(prediction_tokens, gold_tokens)


CMRC_PUNCTUATION = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』") | {"……"}


def _cmrc_segments(text):
    """Lower-cased, stripped text as CMRC2018 segments: each CJK character (U+4E00..U+9FA5) and each
    listed punctuation mark on its own, other runs split into words."""
    segments, run = [], []

    def flush():
        if run:
            segments.extend(_ptb_words("".join(run)))
            run.clear()

    for char in text.lower().strip():
        if "\u4e00" <= char <= "\u9fa5" or char in CMRC_PUNCTUATION:
            flush()
            segments.append(char)
        else:
            run.append(char)
    flush()
    return segments


def _ptb_words(text):
    """A Penn-Treebank-style word split (what NLTK's word_tokenize does for these short runs):
    whitespace-separated, with punctuation at word edges and clitics ('s, n't) split off."""
    words = []
    for word in text.split():
        prefix = []
        while word and word[0] in "\"'([{<":
            prefix.append(word[0])
            word = word[1:]
        suffix = []
        while word and word[-1] in "\"')]}>.,;:!?" and not (word[-1] == "." and len(word) > 1 and word[-2].isdigit()):
            suffix.insert(0, word[-1])
            word = word[:-1]
        match = re.match(r"^(.+?)('s|'re|'ve|'ll|'d|'m|n't)$", word, re.IGNORECASE)
        middle = [match.group(1), match.group(2)] if match else ([word] if word else [])
        words.extend(prefix + middle + suffix)
    return words


def cmrc_exact(prediction, gold):
    strip = lambda t: "".join(c for c in t.lower().strip() if c not in CMRC_PUNCTUATION)
    return float(strip(prediction) == strip(gold))


def cmrc_f1(prediction, gold):
    pred = [s for s in _cmrc_segments(prediction) if s not in CMRC_PUNCTUATION]
    ref = [s for s in _cmrc_segments(gold) if s not in CMRC_PUNCTUATION]
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


def evaluate(examples, predictions, version="1.1", null_odds=None):
    """Official metrics x 100. version "1.1", "2.0" (HasAns/NoAns splits and the best threshold when
    null_odds are given) or "cmrc" (CMRC2018's character-level EM and F1, and their average)."""
    exact_fn, f1_fn = (cmrc_exact, cmrc_f1) if version == "cmrc" else (squad_exact, squad_f1)
    exact, f1, has_answer = {}, {}, {}
    for example in examples:
        golds = [a["text"] for a in example.answers if normalize_answer(a["text"]) or version == "cmrc"]
        if not golds:
            golds = [""]
        has_answer[example.qas_id] = golds != [""]
        if example.qas_id not in predictions:
            logging.warning("no prediction for question %s: counted as wrong", example.qas_id)
            exact[example.qas_id] = f1[example.qas_id] = 0.0
            continue
        prediction = predictions[example.qas_id]
        exact[example.qas_id] = max(exact_fn(prediction, g) for g in golds)
        f1[example.qas_id] = max(f1_fn(prediction, g) for g in golds)
    ids = list(exact)
    result = {"exact_match": 100.0 * sum(exact.values()) / len(ids), "f1": 100.0 * sum(f1.values()) / len(ids),
              "total": len(ids)}
    if version == "cmrc":
        result["average"] = (result["exact_match"] + result["f1"]) / 2
    if version == "2.0":
        for name, keep in (("HasAns", True), ("NoAns", False)):
            subset = [i for i in ids if has_answer[i] == keep]
            if subset:
                result[f"{name}_exact"] = 100.0 * sum(exact[i] for i in subset) / len(subset)
                result[f"{name}_f1"] = 100.0 * sum(f1[i] for i in subset) / len(subset)
                result[f"{name}_total"] = len(subset)
        if null_odds:
            for name, scores in (("exact", exact), ("f1", f1)):
                best, threshold = _best_threshold(ids, scores, null_odds, has_answer, predictions)
                result[f"best_{name}"], result[f"best_{name}_thresh"] = best, threshold
    return result


def _best_threshold(ids, scores, null_odds, has_answer, predictions):
    """The null-odds threshold that maximises the score when every question above it answers ""."""
    score = current = float(sum(1 for i in ids if not has_answer[i]))  # answer "" everywhere
    best_threshold = 0.0
    for qas_id in sorted(ids, key=lambda i: null_odds.get(i, 0.0)):
        if not predictions.get(qas_id):
            continue  # already "": no change
        current += scores[qas_id] - (0.0 if has_answer[qas_id] else 1.0)
        if current > score:
            score, best_threshold = current, null_odds.get(qas_id, 0.0)
    return 100.0 * score / len(ids), best_threshold


def language_of(examples):
    """"cmrc" when most contexts are Chinese, else "1.1"."""
    sample = "".join(e.context[:200] for e in examples[:50])
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in sample)
    return "cmrc" if sample and cjk > len(sample) * 0.3 else "1.1"
