"""The exceptions the course raises on purpose, and what each one means.

Every error the course raises on purpose is an `MMLessonError`: catch that one type to catch them all. Its
message always says what went wrong *and what to do about it*, so that a learner never has to read a
traceback from deep inside torch; the command-line tool prints these messages without a traceback.

Where Python has a usual type for the problem, the course's error is that type too, so code written to catch
it still does:

| error | also a | raised for |
|---|---|---|
| `InputError` | ValueError, TypeError | an argument that cannot work |
| `MissingFileError` | FileNotFoundError | a path with no file (an image, an index) |
| `MissingPackageError` | ModuleNotFoundError | an optional package that is not installed |
| `images.ImageError` | ValueError | an image file or array that cannot be read |
| `search.DamagedIndexError` | ValueError | an index file that is damaged or not an index |
| `course.checkpoints.CheckpointRefusedError` |  | weights that are damaged or of another model |
| `course.assets.AssetUnavailableError` |  | a download that failed, every URL tried |
| `course.assets.CacheAccessError` |  | a cache folder one may not read or write |
| `course.asset_overrides.OverrideError` |  | a rehearsal's override file that is refused |
| `course.i18n.TranslationError` |  | a translation file the tooling cannot use |

Nothing else escapes on purpose: an exception of another type is a bug in the course (please report it).
`tests/test_errors.py` holds the package to this.
"""


class MMLessonError(Exception):
    """A problem the learner can fix; the message says how."""


class InputError(MMLessonError, ValueError, TypeError):
    """An argument that cannot work; the message names it and says what to pass.

    It is a ValueError and a TypeError as well, the errors Python's own functions raise for bad arguments,
    so code that catches those still catches it, whichever of the two a learner expects.
    """


class MissingFileError(MMLessonError, FileNotFoundError):
    """A path where no file is; the message says what to check."""


class MissingPackageError(MMLessonError, ModuleNotFoundError):
    """An optional package that is not installed; the message gives the pip command."""
