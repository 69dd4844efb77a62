"""money is exact for every amount a NUMERIC(78,0) column holds, far past the default Decimal
context's 28 digits, and refuses (MoneyError) what it cannot represent instead of rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.money import MAX_DIGITS, MoneyError, format_units, from_units, steps, to_units

WIDEST = 10**MAX_DIGITS - 1  # the largest count of units a NUMERIC(78,0) column holds


@pytest.mark.parametrize(
    "units", [10**60, 10**60 + 1, 123456789 * 10**62 + 987654321, WIDEST, -WIDEST]
)
def test_wei_amounts_round_trip(units: int) -> None:
    amount = from_units(units, 18)
    assert to_units(amount, 18) == units
    assert format_units(units, 18, 18) == f"{amount:f}"
    assert to_units(Decimal(format_units(units, 18, 18)), 18) == units


@given(st.integers(-WIDEST, WIDEST), st.integers(0, 18))
def test_every_count_of_units_round_trips(units: int, exponent: int) -> None:
    assert to_units(from_units(units, exponent), exponent) == units


def test_steps_counts_long_amounts_exactly() -> None:
    amount = Decimal("9" * 58 + "." + "9" * 18)  # 76 digits
    assert steps(amount, Decimal("1E-18")) == int("9" * 76)
    assert steps(Decimal(10**58), Decimal("1E-18")) == 10**76
    with pytest.raises(MoneyError, match="not a multiple"):
        steps(Decimal("9" * 58 + "." + "9" * 19), Decimal("1E-18"))


def test_a_remainder_far_below_the_step_is_still_seen() -> None:
    with pytest.raises(MoneyError, match="not a multiple"):
        to_units(Decimal("1." + "0" * 150 + "1"), 18)
    with pytest.raises(MoneyError, match="too precise"):
        steps(Decimal("1." + "0" * 150 + "1"), Decimal("0.01"), "too precise")


@pytest.mark.parametrize(
    "amount", [Decimal(10**60), Decimal("1E+200"), Decimal("1E+999999"), Decimal(WIDEST + 1)]
)
def test_counts_wider_than_a_column_are_refused(amount: Decimal) -> None:
    with pytest.raises(MoneyError, match="too large"):
        to_units(amount, 18)


@pytest.mark.parametrize("amount", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_numbers_are_refused(amount: Decimal) -> None:
    with pytest.raises(MoneyError):
        to_units(amount, 8)


def test_from_units_refuses_what_no_column_holds() -> None:
    with pytest.raises(MoneyError, match="too large"):
        from_units(WIDEST + 1, 18)
