"""Output names from ids that other people wrote.

A row's ``id`` names its files (``videos/<name>.mp4``). An id is text from an input
file, so it may hold anything: ``../../etc/passwd``, an absolute path, control
characters, a thousand characters, ``CON``. The manifest keeps the id as written; the
name is made safe here:

* an id of 1 to 128 letters, digits, ``.``, ``_`` and ``-`` that starts with a letter or
  digit, holds no ``..`` and is no device name is used as it is;
* any other id keeps its safe characters (at most 64) and gets ``-`` and eight hex
  digits of a hash of the whole id, so two ids that clean up alike still differ.

The same id always makes the same name, on every machine and in every run.
"""

from __future__ import annotations

import hashlib
import re

#: Longest name kept as written.
MAX_NAME_CHARS = 128
#: Characters kept from an id that has to be cleaned.
_KEPT_CHARS = 64
_SECOND = "\x00"
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
#: Names Windows will not create as files, whatever the extension.
_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)


def output_name(row_id: str) -> str:
    """The file name stem for ``row_id``: the id itself when it is plainly safe."""
    if _PLAIN.match(row_id) and ".." not in row_id and row_id.split(".")[0].lower() not in _DEVICES:
        return row_id
    # Dots go too: they are what makes '..' and hidden files.
    kept = _UNSAFE.sub("_", row_id).strip("_-")[:_KEPT_CHARS].rstrip("_-")
    return f"{kept or 'id'}-{_digest(row_id)}"


def disambiguated(name: str, row_id: str) -> str:
    """A second name for ``row_id`` when ``name`` is taken by a different id."""
    # A different digest from the one output_name may already have put in ``name``.
    return f"{name[:_KEPT_CHARS]}-{_digest(_SECOND + row_id)}"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
