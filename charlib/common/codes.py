"""Class codes (a class is the ASCII code of its character; 999 means "unknown / no character"),
and the two facts about a character image every stage shares: its default size and the ink level.
"""

from __future__ import annotations

IMAGE_SIZE = 28  # px: EMNIST's size, the real handwriting we aim to recognise
INK_LEVEL = 40  # uint8: a white-on-black pixel brighter than this is ink

UNKNOWN = 999
UNKNOWN_NAME = "unknown"
MAX_CODE = 0x10FFFF


def is_code(name: str) -> bool:
    """Whether a folder name is a class code (decimal digits naming 999 or a Unicode code point)."""
    if not (name.isascii() and name.isdigit()):
        return False
    value = int(name)
    return value == UNKNOWN or 0 < value <= MAX_CODE


def code_to_char(code: int) -> str:
    """65 -> 'A'; 999 -> 'unknown'; a code with no visible glyph -> 'U+XXXX'."""
    code = int(code)
    if code == UNKNOWN:
        return UNKNOWN_NAME
    if not 0 < code <= MAX_CODE:
        raise ValueError(f"class code {code} is out of range; expected 999 or 1..{MAX_CODE}")
    char = chr(code)
    return char if char.isprintable() and not char.isspace() else f"U+{code:04X}"


def char_to_code(char: str) -> int:
    """'A' -> 65; 'unknown' -> 999."""
    if char == UNKNOWN_NAME:
        return UNKNOWN
    if len(char) != 1:
        raise ValueError(f"expected one character or 'unknown', got {char!r}")
    return ord(char)


def display_label(code: int) -> str:
    """65 -> 'A (65)'; 999 -> 'unknown (999)'."""
    return f"{code_to_char(code)} ({int(code)})"
