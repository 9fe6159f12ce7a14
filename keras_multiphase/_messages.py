"""Where callbacks' `verbose` messages go: Keras's own rule, public API.

Printed while Keras's interactive logging is on (its default), else sent
to the `keras_multiphase` logger, as `keras.callbacks.ReduceLROnPlateau`'s
messages go to absl logging after `keras.config.disable_interactive_logging()`.
"""

from __future__ import annotations

import logging
import sys

import keras

logger = logging.getLogger("keras_multiphase")


def say(message: str) -> None:
    """Shows a callback's `verbose` message."""
    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        logger.info(message.strip())


# Notes said in this process: a note is news once, not at every fit.
SAID: set = set()


def say_once(message: str) -> None:
    """Shows `message` the first time it is given in this process."""
    if message not in SAID:
        SAID.add(message)
        say(message)
