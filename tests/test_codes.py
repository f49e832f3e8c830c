import pytest

from charlib.common.codes import char_to_code, code_to_char, display_label, is_code


@pytest.mark.parametrize("name", ["65", "999", "33", "126", "0065"])
def test_is_code_accepts_numbers(name):
    assert is_code(name)


@pytest.mark.parametrize("name", ["abc", "__MACOSX", ".DS_Store", "", "6 5", "-1", "0", "٣", "65a"])
def test_is_code_rejects_others(name):
    assert not is_code(name)


def test_code_char_round_trip():
    for code in [*range(33, 127), 999]:
        assert char_to_code(code_to_char(code)) == code


def test_labels():
    assert display_label(65) == "A (65)"
    assert display_label(999) == "unknown (999)"
    assert code_to_char(32) == "U+0020"  # a space has no visible glyph


def test_bad_code_is_a_clear_error():
    with pytest.raises(ValueError, match="out of range"):
        code_to_char(-5)
    with pytest.raises(ValueError, match="one character"):
        char_to_code("AB")
