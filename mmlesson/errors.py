"""The exceptions the course raises on purpose.

Their message always says what went wrong *and what to do about it*, so that a learner never has to read a
traceback from deep inside torch. The command-line tool prints these messages without a traceback.
"""

MAX_SEED = 2**64 - 1  # torch's generators take 64-bit seeds; a negative seed would wrap around to a large one


class MMLessonError(Exception):
    """A problem the learner can fix; the message says how."""


class InputError(MMLessonError, ValueError, TypeError):
    """An argument that cannot work; the message names it and says what to pass.

    It is a ValueError and a TypeError as well, the errors Python's own functions raise for bad arguments,
    so code that catches those still catches it, whichever of the two a learner expects.
    """
