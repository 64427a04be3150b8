"""The nickname rule: names that render as nothing are refused, and the table the page and
the server share is the one this module generates. The page's agreement is in tests/browser/test_js_units.py."""

from __future__ import annotations

import unicodedata

import pytest

from ghosttalk.contract.nickname import (
    RULE_FILE,
    CharClass,
    NameRefused,
    build_table,
    check_name,
    render_module,
    table,
)


def test_the_shared_table_is_what_the_generator_writes() -> None:
    shipped = table()
    if shipped.unicode != unicodedata.unidata_version:
        pytest.skip(f"table from Unicode {shipped.unicode}, this Python has {unicodedata.unidata_version}")
    assert RULE_FILE.read_text(encoding="utf-8") == render_module(build_table()), (
        "regenerate with: python -m ghosttalk.contract --nickname-table"
    )


@pytest.mark.parametrize(
    ("code_point", "kind"),
    [
        (ord("a"), CharClass.VISIBLE),
        (ord("小"), CharClass.VISIBLE),
        (0x1F600, CharClass.VISIBLE),
        (0x20, CharClass.SPACE),
        (0x3000, CharClass.SPACE),
        (0x0A, CharClass.TRIM),
        (0x2028, CharClass.TRIM),
        (0x0301, CharClass.INVISIBLE),
        (0xFE0F, CharClass.INVISIBLE),
        (0x3164, CharClass.INVISIBLE),
        (0x2800, CharClass.INVISIBLE),
        (0x200D, CharClass.REFUSED),
        (0xFEFF, CharClass.REFUSED),
        (0xD800, CharClass.REFUSED),
        (0xE000, CharClass.REFUSED),
        (0x10FFFF, CharClass.REFUSED),
        (0x1F, CharClass.REFUSED),
    ],
)
def test_table_lookup(code_point: int, kind: CharClass) -> None:
    assert table().lookup(code_point) is kind


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        ("Ann", "Ann"),
        ("  Ann Lee\u3000", "Ann Lee"),
        ("\u2028Ann\n", "Ann"),  # line breaks are trimmed at the ends...
        ("A\u2028nn", "chars"),  # ...and refused inside
        ("A\tnn", "chars"),
        ("😀" * 12, "😀" * 12),
        ("😀" * 13, "long"),
        ("e\u0301" * 6, "e\u0301" * 6),  # 12 code points
        ("e\u0301" * 7, "long"),  # code points are counted, not grapheme clusters
        ("❤\ufe0f", "❤\ufe0f"),
        ("", "empty"),
        ("\u3000 \t", "empty"),
        ("\u3164", "invisible"),
        ("\u115f\u1160", "invisible"),
        ("\uffa0", "invisible"),
        ("\u2800\u2800", "invisible"),
        ("\u0301", "invisible"),
        ("\u3164 \u3164", "invisible"),
        ("\u200b", "chars"),
        ("\u200d", "chars"),
        ("a\u200db", "chars"),
        ("\ufeffAnn", "chars"),
        ("Ann\ue000", "chars"),
        ("\udcff", "chars"),
        ("a\x1fb", "chars"),
        ("a\x85b", "chars"),
    ],
)
def test_verdicts(raw: str, verdict: str) -> None:
    try:
        assert check_name(raw) == verdict
    except NameRefused as refused:
        assert refused.code == verdict
