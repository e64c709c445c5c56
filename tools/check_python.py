"""Exit with a readable message when this Python cannot run TensorFlow 2.15."""
import sys

SUPPORTED = ((3, 9), (3, 11))

if not SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]:
    found = ".".join(map(str, sys.version_info[:3]))
    sys.exit(
        f"error: Python {found} at {sys.executable} cannot run this project.\n"
        "TensorFlow 2.15 (the last release with tf.estimator) has wheels for Python 3.9-3.11 only.\n"
        "Install one of those and run, for example: make test PYTHON=python3.11")
