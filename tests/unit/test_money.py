from decimal import Decimal

import pytest

from chalicelib.core.money import (
    MoneyError,
    format_units,
    from_units,
    parse_decimal,
    steps,
    to_units,
)


@pytest.mark.parametrize("text", ["1", "0.5", "100000.01", ".5", "5.", "123456789.123456789"])
def test_parses_plain_positive_decimals_exactly(text: str) -> None:
    assert parse_decimal(text, "size") == Decimal(text)


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "-1",
        "+1",
        "0",
        "0.000",
        "1e5",
        "1E-3",
        " 1",
        "1 ",
        "1_000",
        "",
        "0x10",
        "١",  # noqa: RUF001 - Decimal() would accept Arabic-Indic digits
        "1.2.3",
        "9" * 41,
        1.5,
        True,
        None,
        [],
        {},
    ],
)
def test_refuses_everything_else(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_decimal(value, "size")


def test_integers_are_accepted_exactly() -> None:
    assert parse_decimal(12, "size") == Decimal(12)


def test_units_round_trip_without_rounding() -> None:
    assert to_units(Decimal("0.00000001"), 8) == 1
    assert to_units(Decimal("1.5"), 18) == 1_500_000_000_000_000_000
    assert from_units(1, 8) == Decimal("0.00000001")
    with pytest.raises(MoneyError):
        to_units(Decimal("0.000000001"), 8)


def test_steps_refuses_off_grid() -> None:
    assert steps(Decimal("0.03"), Decimal("0.01")) == 3
    with pytest.raises(MoneyError):
        steps(Decimal("0.035"), Decimal("0.01"))


def test_format_units_pads_and_never_rounds() -> None:
    assert format_units(15, 1, 8) == "1.50000000"
    with pytest.raises(ValueError):
        format_units(1123, 3, 2)


def test_steps_is_exact_for_the_longest_amounts() -> None:
    huge = Decimal("9" * 38 + ".5")
    assert steps(huge, Decimal("0.5")) == int("9" * 38) * 2 + 1
    assert steps(Decimal("0." + "0" * 30 + "1"), Decimal("1E-31")) == 1
    with pytest.raises(MoneyError, match="too precise"):
        steps(Decimal("1" * 39 + ".001"), Decimal("0.01"), "price too precise")
