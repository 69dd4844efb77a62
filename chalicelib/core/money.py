"""Exact money: strict parsing of decimal strings, conversion to integer internal units, and the
one formatter of internal units as decimal strings.

Nothing here rounds. A value that is not exactly representable on the grid it is asked for is
refused with a `MoneyError` whose message a client can act on.
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


# Enough digits for any amount parse_decimal admits (40 characters) divided by any step, so
# that division is exact and never raises for lack of precision (the default context has 28).
_EXACT = Context(prec=120, traps=[InvalidOperation, DivisionByZero, Inexact])


def steps(amount: Decimal, step: Decimal, message: str | None = None) -> int:
    """How many whole `step`s `amount` is; raises MoneyError(message) if not a whole number."""
    with localcontext(_EXACT):
        count, remainder = divmod(amount, step)
    if remainder != 0:
        raise MoneyError(message or f"{amount} is not a multiple of {step}")
    return int(count)


def to_units(amount: Decimal, exponent: int) -> int:
    """Decimal amount -> integer internal units (10**-exponent each), exactly or not at all."""
    return steps(amount, Decimal(1).scaleb(-exponent))


def from_units(units: int, exponent: int) -> Decimal:
    """Integer internal units -> Decimal, exactly."""
    return Decimal(units).scaleb(-exponent)


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
