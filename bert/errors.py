"""Errors caused by the user's files or flags, and how scripts report them."""
import sys


class UserInputError(ValueError):
    """A mistake in a user's file, flag or config: scripts print the message, not a traceback."""


def run_main(main):
    """Runs an absl `main(argv)`, turning a UserInputError into a one-line message and exit code 2."""
    from absl import app

    def guarded(argv):
        try:
            main(argv)  # a return value would become app.run's exit status
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except Exception as error:  # TensorFlow's checksum error: a file damaged inside, its length intact
            if type(error).__name__ != "DataLossError":
                raise
            message = str(getattr(error, "message", error)).strip().splitlines()[0]
            print(f"error: a checkpoint or data file is damaged ({message})", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
