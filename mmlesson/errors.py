"""The one exception type the course raises on purpose.

Its message always says what went wrong *and what to do about it*, so that a learner never has to read a
traceback from deep inside torch. The command-line tool prints these messages without a traceback.
"""


class MMLessonError(Exception):
    """A problem the learner can fix; the message says how."""
