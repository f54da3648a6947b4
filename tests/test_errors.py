"""The error contract of `mmlesson.errors`: every exception the package raises on purpose is an MMLessonError.

Each `raise` in the package is read from its source and its exception resolved in its module: it must be a
class derived from MMLessonError, or an error built by a helper that returns one, or one of the few others
that are not the learner's to handle (listed below, each with its reason).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import typing
from pathlib import Path

import pytest

from mmlesson.errors import InputError, MissingFileError, MissingPackageError, MMLessonError

ROOT = Path(__file__).resolve().parents[1]
# Raised on purpose, but not errors a learner handles.
NOT_THE_LEARNERS = {
    SystemExit: "the command lines end with it",
    AttributeError: "a module's __getattr__ must raise it for a name it does not have",
    AssertionError: "marks code that cannot be reached",
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def raised_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each `raise Name(...)` or `raise helper(...)`; bare re-raises are left out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            function = node.exc.func
            if isinstance(function, ast.Name):
                found.append((node.lineno, function.id))
            elif isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
                found.append((node.lineno, f"{function.value.id}.{function.attr}"))
    return found


def resolve(module: object, dotted: str) -> object:
    """What a name in a `raise` means inside `module`: a global of the module, else a builtin."""
    head, *rest = dotted.split(".")
    value = getattr(module, head, None) or getattr(builtins, head, None)
    for part in rest:
        value = getattr(value, part, None)
    return value


def is_on_purpose(raised: object) -> bool:
    """An MMLessonError class, or a helper whose return annotation is one."""
    if inspect.isclass(raised):
        return issubclass(raised, MMLessonError) or raised in NOT_THE_LEARNERS
    if inspect.isfunction(raised):
        returned = typing.get_type_hints(raised).get("return")
        return inspect.isclass(returned) and issubclass(returned, MMLessonError)
    return False


def is_caught_where_raised(module: object, raised: object) -> bool:
    """A private exception class of the module that the module itself handles (an internal signal)."""
    if not (inspect.isclass(raised) and raised.__name__.startswith("_")):
        return False
    source = inspect.getsource(module)
    private = [cls.__name__ for cls in raised.__mro__ if cls.__name__.startswith("_")]
    return any(f"except {name}" in source or f", {name})" in source for name in private)


PACKAGE = sorted((ROOT / "mmlesson").rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE, ids=lambda p: p.relative_to(ROOT / "mmlesson").as_posix())
def test_every_error_raised_on_purpose_is_an_mmlesson_error(path: Path):
    if path.name == "__main__.py":
        return  # importing it would run the command line
    module = importlib.import_module(module_name(path))
    wrong = []
    for line, name in raised_names(path):
        if name == "type":  # `raise type(error)(...)`: the caught error's own class, message extended
            continue
        raised = resolve(module, name)
        if not (is_on_purpose(raised) or is_caught_where_raised(module, raised)):
            wrong.append(f"line {line}: {name}")
    assert not wrong, "raise an MMLessonError (see mmlesson/errors.py): " + ", ".join(wrong)


def test_the_course_errors_are_also_pythons_usual_ones():
    assert issubclass(InputError, ValueError) and issubclass(InputError, TypeError)
    assert issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(MissingPackageError, ModuleNotFoundError)
    assert all(issubclass(e, MMLessonError) for e in (InputError, MissingFileError, MissingPackageError))


def test_a_bad_argument_is_caught_as_an_mmlesson_error_and_as_a_value_error():
    import numpy as np

    from mmlesson import viz

    for caught in (MMLessonError, ValueError):
        with pytest.raises(caught, match="ncols must be at least 1"):
            viz.image_grid([np.zeros((4, 4, 3), np.uint8)], ncols=0)
