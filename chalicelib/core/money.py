"""Exact money: strict parsing of decimal strings, conversion to integer internal units, and the
one formatter of internal units as decimal strings.

Nothing here rounds. A value that is not exactly representable on the grid it is asked for, or
whose count of internal units would not fit a `NUMERIC(78,0)` column, is refused with a
`MoneyError` whose message a client can act on. Any count up to that size is exact: the Decimal
arithmetic runs in a context of its own, never the default context's 28 digits.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, localcontext

# Plain positional decimals only: no sign, exponent, NaN, Infinity, whitespace or underscores.
_DECIMAL_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?|\.[0-9]+|[0-9]+\.")
_MAX_CHARS = 40  # far above any real amount; bounds the work a hostile client can cause


class MoneyError(ValueError):
    """An amount a client sent that we will not accept; str(error) is the client message."""


def parse_decimal(value: object, field: str) -> Decimal:
    """Parse a client amount: a decimal string (or a JSON integer), strictly positive.

    Fractional JSON numbers are refused even though we read them exactly (as Decimal): the
    client that wrote one most likely held it as a binary float, already rounded.
    """
    if isinstance(value, bool | float | Decimal):
        raise MoneyError(f"{field} must be a decimal string")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise MoneyError(f"{field} must be a decimal string")
    if len(text) > _MAX_CHARS or not _DECIMAL_RE.fullmatch(text):
        raise MoneyError(f"{field} is not a valid number")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:  # unreachable after the regex, kept for safety of changes
        raise MoneyError(f"{field} is not a valid number") from exc
    if amount <= 0:
        raise MoneyError(f"{field} must be positive")
    return amount


MAX_DIGITS = 78  # NUMERIC(78,0): the widest count of internal units a column holds

# Every operation on amounts runs in this context: precision for any quotient `steps` lets
# through (its magnitude check bounds a count to MAX_DIGITS + 1 digits) and a trap on anything
# inexact, so an operation here is exact or raises; it never rounds, whatever the default
# context's 28 digits would do.
_EXACT = Context(prec=2 * MAX_DIGITS, traps=[InvalidOperation, DivisionByZero, Inexact])
_UNITS_LIMIT = 10**MAX_DIGITS


def steps(amount: Decimal, step: Decimal, message: str | None = None) -> int:
    """How many whole `step`s `amount` is, exactly; raises MoneyError(message) if not a whole
    number, and MoneyError if the count has more than MAX_DIGITS digits (no column holds it)."""
    if not amount.is_finite():
        raise MoneyError(f"{amount} is not a valid amount")
    # adjusted() is the exponent of the leading digit: a cheap bound on the quotient's size
    # that keeps a hostile exponent (1E+999999) from reaching the division.
    if amount and amount.adjusted() - step.adjusted() > MAX_DIGITS:
        raise MoneyError(f"{amount} is too large")
    try:
        with localcontext(_EXACT):
            count, remainder = divmod(amount, step)
    except ArithmeticError as exc:
        raise MoneyError(message or f"{amount} is not a multiple of {step}") from exc
    if remainder != 0:
        raise MoneyError(message or f"{amount} is not a multiple of {step}")
    units = int(count)  # an int, as abs() of a Decimal would round in the default context
    if abs(units) >= _UNITS_LIMIT:
        raise MoneyError(f"{amount} is too large")
    return units


def to_units(amount: Decimal, exponent: int) -> int:
    """Decimal amount -> integer internal units (10**-exponent each), exactly or not at all."""
    return steps(amount, Decimal(1).scaleb(-exponent))


def from_units(units: int, exponent: int) -> Decimal:
    """Integer internal units -> Decimal, exactly; MoneyError past MAX_DIGITS digits."""
    if abs(units) >= _UNITS_LIMIT:
        raise MoneyError(f"{units} is too large")
    return Decimal(units).scaleb(-exponent, _EXACT)


def format_units(units: int, exponent: int, places: int) -> str:
    """`units` x 10**-exponent as a decimal string with exactly `places` fraction digits, as
    Coinbase prints amounts. Integer arithmetic only (the matcher formats every changed level
    of every batch); raises ValueError rather than round."""
    if places >= exponent:
        scaled = units * 10 ** (places - exponent)
    else:
        scaled, rest = divmod(units, 10 ** (exponent - places))
        if rest:
            raise ValueError(f"{units}e-{exponent} has more than {places} decimal places")
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"
