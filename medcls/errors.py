"""The errors medcls raises for bad input, and the one line the command line makes of any error."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class MedclsError(Exception):
    """Bad input the user can fix; the message names the culprit and what to do."""


class ConfigError(MedclsError, ValueError):
    """A setting has an impossible value; the message names its option (e.g. ``--data.image_size``)."""


class DataError(MedclsError, ValueError):
    """A data set folder or file does not match what its reader expects."""


class CheckpointError(MedclsError):
    """A checkpoint or weights file is missing or unreadable, or does not fit the model or the tasks."""


class TrainingError(MedclsError):
    """Training cannot go on, e.g. because its loss became NaN or infinite."""


class TuningError(MedclsError, ValueError):
    """A learning-rate search or range test asked for something impossible, or its folder holds another search."""


DEBUG_VARIABLE = "MEDCLS_DEBUG"
"""Set to 1 (or pass ``--debug``) to see the traceback of an error instead of its one line."""


def debugging() -> bool:
    """Whether errors should show their traceback (``MEDCLS_DEBUG`` set to anything but 0)."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


@contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """Turn any error in the block into one ``<prog>: error: ...`` line on stderr and exit status 1.

    The message is that of the first :class:`MedclsError` behind the error (libraries such as jsonargparse wrap
    the errors raised while building the model or the data); any other error is shown with its type. With
    ``MEDCLS_DEBUG=1`` the error is raised as it is, traceback and all. Ctrl-C ends with status 130.
    """
    try:
        yield
    except KeyboardInterrupt:
        if debugging():
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        if debugging():
            raise
        sys.exit(f"{prog}: error: {describe(error)}")


def describe(error: BaseException) -> str:
    """One line for an error: the message of the :class:`MedclsError` behind it, else the innermost cause's."""
    chain = [error]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    ours = next((link for link in chain if isinstance(link, MedclsError)), None)
    if ours is not None:
        return _one_line(str(ours))
    if isinstance(error, argparse.ArgumentError):
        return _parse_error(str(error))
    root = chain[-1]
    return f"{type(root).__name__}: {_one_line(str(root))} (run again with --debug for the traceback)"


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip()) or "(no message)"


_NOISE = ("Does not validate against any of the Union subtypes", "Subtypes:", "Errors:", "Given value",
          "Expected a <class 'NoneType'>")  # fmt: skip
_PARSER_KEY = re.compile(r'Parser key "([^"]+)":\s*(.*)')


def _parse_error(message: str) -> str:
    """The nested account jsonargparse gives of an invalid option, as ``--the.option: the innermost reason``.

    Its message nests one ``Parser key "k":`` per level (model -> net -> name) and tries every type of a union;
    the option is the chain of keys, the reason the innermost line that is not about the union itself.
    """
    if missing := re.match(r"the following arguments are required: (.*)", message):
        options = ", ".join("--" + name.split(".", 1)[-1] for name in missing[1].split(", "))
        return (
            f"{options} not given: pass a config that sets them (e.g. --config configs/demo.yaml), or for "
            "validate, test and predict the --ckpt_path of a checkpoint"
        )
    keys, reasons, given = [], [], ""
    class_problem = None  # a class that could not be used, unless the reason lies deeper, in one of its options
    for line in message.splitlines():
        text = line.strip().removeprefix("- ").strip()
        text = re.sub(r"^Type .*? expects a function or a callable class: ", "", text)
        if text.startswith("Given value: ") and not re.match(r"Given value: (Namespace|NestedArg)\(", text):
            given = text.removeprefix("Given value: ")
        if not text or text.startswith(_NOISE):
            continue
        if match := _PARSER_KEY.match(text):
            keys.append(match[1].replace("init_args.", ""))
            class_problem, text = None, match[2]
        text = re.sub(r"\. Got value: (Namespace|NestedArg)\(.*$", "", text)
        if text.startswith("Problem with given class_path"):
            class_problem = text.rstrip(":")
        elif text:
            reasons.append(text)
    reason = reasons[-1] if reasons else message
    if class_problem is not None:
        reason = f"{class_problem}: {reason}"
    if given and "Got value" not in reason and len(given) < 80:
        reason += f", got {given!r}"
    option = "--" + ".".join(keys) + ": " if keys else ""
    return f"{option}{_one_line(reason)} (--help lists the options)"


def summarise_error(error: BaseException) -> str:
    """An exception as ``Type: gist`` on one line, for messages that give a library's reason in brackets.

    The gist is the first sentence, at most 200 characters. torch's refusals of a pickle run to several paragraphs of
    advice about ``weights_only``; their gist is the line after ``WeightsUnpickler error:``.
    """
    text = str(error)
    _, marker, unpickler_reason = text.partition("WeightsUnpickler error:")
    if marker:
        text = unpickler_reason.strip().split("\n")[0]
    gist = " ".join(text.split()).split(". ")[0][:200] or ("the file ends early" if isinstance(error, EOFError) else "")
    kind = type(error).__name__
    # Modules' own lower-case ``error`` classes (struct.error for a file of a few bytes) say little by their name.
    kind = kind if kind[0].isupper() else f"{type(error).__module__}.{kind}"
    return f"{kind}: {gist}" if gist else kind
