"""Figures of results, drawn headless: the few-shot accuracy curves and a classifier's confusion matrix.

Drawn with matplotlib's object-oriented API (Figure + FigureCanvasAgg), so no GUI backend is chosen and
pyplot's global state is never touched. Each *_figure function returns the Figure, for tests to inspect;
save() writes a PNG atomically (a temporary name, then a rename).

Fonts: labels may be Chinese. The text is drawn in DejaVu Sans (matplotlib's own, always there) with the
first installed CJK family of CJK_FONTS as a per-glyph fallback. With no CJK font installed, CJK glyphs
are drawn as empty boxes, matplotlib's warning per missing glyph is silenced, and one warning says what
to install (e.g. `apt-get install fonts-noto-cjk`).
"""
import os
import re
import unicodedata
import warnings

import numpy as np
from absl import logging
from matplotlib import font_manager
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bert import files

# Installed with fonts-noto-cjk, fonts-wqy-microhei / -zenhei (Debian), or present on Windows / macOS.
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
             "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Arial Unicode MS")
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_MISSING_GLYPH = r"Glyph \d+ .* missing from font"


def cjk_fonts(rescan=False):
    """The families of CJK_FONTS that are installed, in CJK_FONTS' order. matplotlib lists fonts from
    its cache (~/.cache/matplotlib), so one installed later is missed: rescan=True first adds the
    system's font files that the cache does not know (in this process only)."""
    manager = font_manager.fontManager
    found = [name for name in CJK_FONTS if name in {font.name for font in manager.ttflist}]
    if found or not rescan:
        return found
    known = {os.path.realpath(font.fname) for font in manager.ttflist}
    for path in font_manager.findSystemFonts():
        if os.path.realpath(path) not in known:
            try:
                manager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                pass  # a font file FreeType cannot read
    return cjk_fonts()


def _has_cjk(texts):
    return any(_CJK.search(str(text)) for text in texts)


def _fonts(texts):
    """rcParams for building a figure whose text includes `texts`: DejaVu Sans, then the installed CJK
    families as per-glyph fallbacks. (A Text takes its font family when it is made, so this must
    surround the building, not only the drawing.)"""
    return rc_context({"font.family": ["DejaVu Sans"] + cjk_fonts(rescan=_has_cjk(texts))})


def save(figure, path, texts=()):
    """Writes `figure` to `path` as a PNG, atomically. texts: the label strings drawn, to warn once
    when some are CJK and no CJK font is installed."""
    if _has_cjk(texts) and not cjk_fonts():
        logging.warning("%s: no CJK font installed, so Chinese/Japanese/Korean labels are drawn as boxes; "
                        "install one (e.g. apt-get install fonts-noto-cjk, or fonts-wqy-microhei)", path)
    tmp = files.temporary_name(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with _fonts(texts), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_MISSING_GLYPH)
            FigureCanvasAgg(figure).print_png(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def fewshot_figure(rows, held_out_classes=None):
    """Accuracy (%) against K (shots): one line per table row and N (ways), its 95% interval as a band.

    rows: {row name: {setting "5w1s": {"accuracy": fraction, "ci95": fraction, ...}}}, the "rows" of
    fewshot_results.json (fewshot.evaluate). A line with one K is a point with an error bar instead.
    """
    with _fonts(rows):
        return _draw_fewshot(rows, held_out_classes)


def _draw_fewshot(rows, held_out_classes):
    from bert.fewshot import parse_setting  # here, not at the top: bert.fewshot imports TensorFlow

    figure = Figure(figsize=(6.4, 4.2), dpi=100, layout="tight")  # laid out when drawn
    axes = figure.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    styles = ["-", "--", ":", "-."]
    ways = sorted({parse_setting(s)[0] for by_setting in rows.values() for s in by_setting})
    shots = sorted({parse_setting(s)[1] for by_setting in rows.values() for s in by_setting})
    for row_index, (name, by_setting) in enumerate(rows.items()):
        color = colors[row_index % len(colors)]
        for way_index, n_way in enumerate(ways):
            points = sorted((parse_setting(s)[1], 100 * r["accuracy"], 100 * r["ci95"])
                            for s, r in by_setting.items() if parse_setting(s)[0] == n_way)
            if not points:
                continue
            k, accuracy, ci = (np.array(column) for column in zip(*points))
            label = f"{name}, {n_way}-way"
            style = styles[way_index % len(styles)]
            if len(points) == 1:
                axes.errorbar(k, accuracy, yerr=ci, color=color, linestyle=style, marker="o", capsize=4,
                              label=label)
            else:
                axes.plot(k, accuracy, color=color, linestyle=style, marker="o", label=label)
                axes.fill_between(k, accuracy - ci, accuracy + ci, color=color, alpha=0.15, linewidth=0)
    axes.set_xticks(shots)
    if len(shots) == 1:
        axes.set_xlim(shots[0] - 1, shots[0] + 1)
    axes.set_xlabel("K: support examples per class (shots)")
    axes.set_ylabel("accuracy (%)")
    axes.grid(True, alpha=0.3)
    where = f" on {held_out_classes} held-out classes" if held_out_classes is not None else ""
    axes.set_title(f"Few-shot accuracy{where}\n(mean over episodes, shaded: 95% interval)", fontsize=10)
    if rows:
        axes.legend(fontsize=8, loc="best")
    return figure


def write_fewshot_plot(path, rows, held_out_classes=None):
    """fewshot_figure saved as a PNG at `path`; returns the Figure."""
    figure = fewshot_figure(rows, held_out_classes)
    save(figure, path, texts=list(rows))
    return figure


def _short(label, width=24):
    label = " ".join(str(label).split())  # a label may hold tabs or line breaks
    return label if len(label) <= width else label[:width - 1] + "…"


def confusion_figure(labels, matrix, title=None):
    """Counts of (true label, predicted label): rows are true labels, columns predictions.

    labels: the class names in matrix order; matrix: [labels, labels] counts (the report's
    confusion_matrix). Nonzero counts are written in their cells (up to 40 labels; past that, colour
    only); zeros are left blank. Long label names are cut to 24 characters.
    """
    with _fonts(labels):
        return _draw_confusion(labels, matrix, title)


def _draw_confusion(labels, matrix, title):
    matrix = np.asarray(matrix, dtype=np.int64).reshape(len(labels), len(labels))
    n = len(labels)
    side = min(max(4.0, 0.32 * n + 2.5), 14.0)  # inches: about 30 labels fit at a readable size
    figure = Figure(figsize=(side + 0.8, side), dpi=100, layout="tight")
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    names = [_short(label) for label in labels]
    tick_size = 9 if n <= 12 else max(6.5, 9 - (n - 12) * 0.15)
    # Upright column names when they fit in a cell (short ones, e.g. Chinese words); else turned.
    cell_points = 0.75 * side * 72 / max(n, 1)
    widest = max((sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in name) for name in names),
                 default=0)  # in half-em units: a CJK character is one em wide
    rotation = 0 if widest * tick_size * 0.55 < 0.9 * cell_points else 45 if n <= 20 else 90
    axes.set_xticks(range(n), names, rotation=rotation, ha="right" if rotation == 45 else "center",
                    rotation_mode="anchor" if rotation == 45 else "default", fontsize=tick_size)
    axes.set_yticks(range(n), names, fontsize=tick_size)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    if n <= 40:
        threshold = matrix.max() / 2 if matrix.size else 0
        cell_size = 10 if n <= 10 else max(5, 10 - (n - 10) * 0.2)
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                axes.text(j, i, str(count), ha="center", va="center", fontsize=cell_size,
                          color="white" if count > threshold else "black")
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    accuracy = f", accuracy {100 * correct / total:.1f}%" if total else ""
    axes.set_title(title or f"Confusion matrix: {total} examples{accuracy}", fontsize=10)
    return figure


def write_confusion_matrix(path, confusion, title=None):
    """confusion_figure of a report's "confusion_matrix" ({"labels", "matrix"}) saved as a PNG; returns it."""
    figure = confusion_figure(confusion["labels"], confusion["matrix"], title)
    save(figure, path, texts=confusion["labels"])
    return figure
