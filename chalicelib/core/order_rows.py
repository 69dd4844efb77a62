"""One row of `orders` as the API and the matcher read it: the named row type, its column list,
and the psycopg row factory that builds it.

A reader selects exactly `ORDER_COLUMNS` on a cursor with the `order_row` factory and reads the
fields by name; the column list is the type's own field list, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

if TYPE_CHECKING:
    from psycopg.cursor import BaseCursor
    from psycopg.rows import RowMaker


class OrderRow(NamedTuple):
    """An order as Postgres keeps it. Amounts are internal units (numeric columns, read as
    Decimal): price in quote units per whole base unit, size in base units, funds and the
    executed value and fees in quote units."""

    id: UUID
    user_id: UUID
    client_oid: UUID | None
    product_id: str
    side: str
    type: str
    price: Decimal | None
    size: Decimal | None
    funds: Decimal | None
    time_in_force: str
    post_only: bool
    stp: str
    status: str
    done_reason: str | None
    reject_reason: str | None
    hold_asset: str
    hold_amount: Decimal
    filled_size: Decimal
    executed_value: Decimal
    fill_fees: Decimal
    stp_size: Decimal  # base units removed by self-trade prevention
    seq: int | None  # the product sequence at which it rested: its time priority
    accepted_seq: int | None  # the product sequence of its submit
    cancel_seq: int | None  # the product sequence of its explicit cancel
    created_at: datetime
    done_at: datetime | None


ORDER_COLUMNS = ", ".join(OrderRow._fields)


def order_row(cursor: BaseCursor[Any, Any]) -> RowMaker[OrderRow]:
    """psycopg row factory: each row of a `SELECT {ORDER_COLUMNS}` as an OrderRow.

    The row is built straight from the values psycopg loaded, with no work per field; a result
    with another number of columns raises TypeError."""
    return OrderRow._make
