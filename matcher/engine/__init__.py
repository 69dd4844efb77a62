"""The matching engine: one product's order book, pure and deterministic.

It takes commands (``submit``, ``cancel``) and returns events; it performs no I/O, reads no
clock and draws no random numbers, so replaying the same commands from the same snapshot gives
the same events. Semantics follow Coinbase Exchange: price-time priority, fills at the resting
(maker) order's price, limit orders GTC/IOC/FOK with post-only, market orders capped by size
and/or (buys) by funds, self-trade prevention (dc, co, cn, cb; the taker's mode applies).

Units are integers: prices in ticks, sizes in lots, funds and fees in the quote asset's internal
units (``price * size * quote_units_per_tick_lot``). Fees are charged per fill, rounded up to
the unit: ``fee = ceil(notional * rate)``.

Example::

    >>> book = OrderBook(quote_units_per_tick_lot=1, min_size_lots=1)
    >>> book.submit(Order.limit("o1", "alice", SELL, price=100, size=5))
    [Opened(seq=1, order_id='o1', account='alice', side='sell', price=100, size=5)]
    >>> events = book.submit(Order.market("o2", "bob", BUY, size=2))
    >>> [type(e).__name__ for e in events]
    ['Fill', 'Done']
    >>> fill = events[0]
    >>> fill.price, fill.size, fill.notional, fill.maker_fee, fill.taker_fee
    (100, 2, 200, 1, 1)
    >>> book.cancel("o1")[0].remaining
    3

Events (NamedTuples; every one that changes state carries the next number of a gap-free,
per-product sequence):

* ``Opened``  — the order now rests on the book with ``size`` lots; its priority is ``seq``.
* ``Fill``    — a trade at the maker's price, with both orders, both accounts, notional and fees.
* ``Changed`` — an order's open size was reduced without a trade (self-trade prevention dc).
* ``Done``    — the order left (or never entered) the book: ``reason`` is ``filled``,
  ``canceled``, ``self_trade`` or ``rejected``; ``message`` says why (``post only``,
  ``fok not filled``, ``size too small``, ``funds too small``, ``ioc``, ``no liquidity`` ...).
* ``CancelRejected`` — ``cancel`` of an id that is not resting; no state changed, so no ``seq``.

Self-trade prevention with dc for an order that has funds but no size behaves as cn (the taker's
remainder is cancelled), as Coinbase does: there is no size to decrement by.

Builds: ``OrderBook`` is mypyc-compiled from book.py when ``make engine`` has built it for the
sources on disk, else book.py itself (``ENGINE_PURE=1`` forces that); ``BUILD`` is
``"compiled"`` or ``"pure"``. Same source, same behaviour; see ``compiled/``.

Holds: a buy's fees are rounded up per fill, so ``ceil(total * rate)`` is not a safe fee hold for
a limit buy that may fill in several pieces; use :meth:`OrderBook.buy_hold`. A market buy with
``funds`` never spends (notional plus taker fees) past ``funds``.
"""

from typing import TYPE_CHECKING

from .compiled import select as _select
from .events import (
    BUY,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    STP_MODES,
    TIME_IN_FORCE,
    CancelRejected,
    Changed,
    Done,
    DuplicateOrderId,
    Event,
    Fill,
    Opened,
    Order,
)

if TYPE_CHECKING:
    from .book import OrderBook

    BUILD: str
else:
    # The compiled book when its build matches the sources, else book.py (see compiled/).
    _book, BUILD = _select()
    OrderBook = _book.OrderBook
    del _book

__all__ = [
    "BUY",
    "FOK",
    "GTC",
    "IOC",
    "LIMIT",
    "MARKET",
    "SELL",
    "STP_MODES",
    "TIME_IN_FORCE",
    "CancelRejected",
    "Changed",
    "Done",
    "DuplicateOrderId",
    "Event",
    "Fill",
    "Opened",
    "Order",
    "OrderBook",
]
