"""`exchange check`: verify the invariants of DESIGN.md against Postgres.

Each check adds a line per violation (capped per check) to the report:

1. conservation: per asset, sum(available + hold) over every balance (the fee accounts
   included) == completed deposits - completed withdrawals (amount + fee: what left the user).
2. holds: every live order holds exactly what it can still spend: a sell its open size; a
   limit buy `limit_buy_hold(price, open lots)`; a pending market buy its funds. Open size =
   size - filled_size - stp_size. Market orders are never open. A finished order holds nothing.
   And an account's hold equals the holds of its live orders (plus pending withdrawals).
3. ledger: per balance row, the sum of its ledger amounts == available + hold; every ledger
   row's balance, order and product exist (no foreign key checks them: migrations 0007, 0008).
4. trades: each has one maker and one taker order, both existing orders of its product (no
   foreign key checks them either), on opposite sides, at the maker's price; every order's
   filled_size / executed_value / fill_fees equal its trades' sums.
5. replay: per product, the orders' submits (by accepted_seq) and explicit cancels (by
   cancel_seq), fed in that order through a fresh engine, reproduce exactly the product's
   trades, its gap-free sequence up to product_state.last_seq, and its open orders.
6. accounts: every (account, asset)'s available + hold == its completed deposits - completed
   withdrawals + the effect of every trade on it, read from the trade and both its orders.
7. trade ledger: each trade has exactly the ledger rows it calls for: accounts, assets, types
   and amounts. 6 and 7 recompute from the source tables what 1 and 3 only total
   (matcher/account_proof.py): they see funds credited to the wrong account.

Check 5 is incremental: after a product's replay passed, a checkpoint of the replayed book at
product_state.last_seq is stored (table check_checkpoints, migration 0005), and the next run
restores it and replays only the submits and cancels after it, comparing only the trades after
its last trade; the open orders are always compared in full. A checkpoint never hides a later
rewrite of what it covers: it carries a digest of the covered trades and orders (`_digest`),
recomputed on every run; if they changed, that is a violation and the product is replayed from
seq 0 in the same run. `full=True` (`exchange check --full`) ignores checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from chalicelib.core.catalog import PRODUCTS
from chalicelib.core.order_rows import ORDER_COLUMNS, order_row
from matcher import checkpoints
from matcher.account_proof import check_accounts, check_trade_ledger
from matcher.books import OrderState, Rules
from matcher.engine import Fill

MAX_PER_CHECK = 20


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _per_check: dict[str, int] = field(default_factory=dict)

    def bad(self, check: str, message: str) -> None:
        n = self._per_check.get(check, 0) + 1
        self._per_check[check] = n
        if n <= MAX_PER_CHECK:
            self.violations.append(f"[{check}] {message}")
        elif n == MAX_PER_CHECK + 1:
            self.violations.append(f"[{check}] ... more violations not shown")

    def failed(self, check: str) -> bool:
        return check in self._per_check

    @property
    def ok(self) -> bool:
        return not self._per_check

    def text(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.counts.items()]
        lines.append("OK: every invariant holds" if self.ok else "VIOLATIONS:")
        lines.extend(f"  {v}" for v in self.violations)
        return "\n".join(lines)


def run_check(
    database_url: str,
    products: Iterable[str] | None = None,
    *,
    full: bool = False,
    save: bool = True,
) -> Report:
    """Check everything in one REPEATABLE READ snapshot (a live system keeps writing).

    The replay starts from each product's checkpoint, or from seq 0 with `full` (or with no
    checkpoint, or none usable). Then, with `save`, one short write transaction after the
    snapshot stores a checkpoint for each product whose replay found no violation. Before
    migration 0005 there is no checkpoint table: every replay is full and nothing is stored.
    """
    report = Report()
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        _conservation(conn, report)
        _holds(conn, report)
        _ledger(conn, report)
        _trades(conn, report)
        check_accounts(conn, report)
        check_trade_ledger(conn, report)
        stored = checkpoints.table_exists(conn)
        passed = []
        for product_id in products or PRODUCTS:
            start = checkpoints.load(conn, product_id) if stored and not full else None
            cp = _replay(conn, product_id, report, start)
            if cp is not None:
                passed.append(cp)
        conn.commit()  # the end of the snapshot
        if save and stored and passed:
            with conn.transaction():
                for cp in passed:
                    checkpoints.save(conn, cp)
    return report


def _conservation(conn: psycopg.Connection, report: Report) -> None:
    rows = conn.execute(
        """SELECT a.id,
             (SELECT coalesce(sum(available + hold), 0) FROM balances WHERE asset = a.id),
             (SELECT coalesce(sum(amount), 0) FROM deposits
               WHERE asset = a.id AND status = 'completed'),
             (SELECT coalesce(sum(amount + fee), 0) FROM withdrawals
               WHERE asset = a.id AND status = 'completed')
           FROM assets a ORDER BY a.id"""
    ).fetchall()
    for asset, total, deposits, withdrawals in rows:
        if total != deposits - withdrawals:
            report.bad(
                "conservation",
                f"{asset}: balances {total} != deposits {deposits} - withdrawals {withdrawals}",
            )
    report.counts["assets"] = len(rows)


def _holds(conn: psycopg.Connection, report: Report) -> None:
    rules = {p: Rules.of(p) for p in PRODUCTS}
    live = 0
    with conn.cursor(name="live_orders", row_factory=order_row) as cur:
        cur.itersize = 5000
        cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE status IN ('pending', 'open')")
        for row in cur:
            live += 1
            r = rules[row.product_id]
            o = OrderState.from_row(row, r)
            expected = _expected_hold(o, r)
            if expected is None:
                report.bad("holds", f"order {o.id}: a {o.type} order is {o.status}")
            elif o.hold_amount != expected:
                report.bad(
                    "holds", f"order {o.id} ({o.status}) holds {o.hold_amount}, expected {expected}"
                )
    report.counts["live orders"] = live
    for oid, status, hold in conn.execute(
        "SELECT id, status, hold_amount FROM orders "
        "WHERE status IN ('done', 'rejected') AND hold_amount <> 0 LIMIT 100"
    ):
        report.bad("holds", f"order {oid} is {status} but holds {hold}")
    for user_id, asset, hold, orders_hold in conn.execute(
        """SELECT b.user_id, b.asset, b.hold, coalesce(o.h, 0) + coalesce(w.h, 0)
           FROM balances b
           LEFT JOIN (SELECT user_id, hold_asset AS asset, sum(hold_amount) AS h FROM orders
                      WHERE status IN ('pending', 'open') GROUP BY 1, 2) o USING (user_id, asset)
           LEFT JOIN (SELECT user_id, asset, sum(amount + fee) AS h FROM withdrawals
                      WHERE status = 'pending' GROUP BY 1, 2) w USING (user_id, asset)
           WHERE b.hold <> coalesce(o.h, 0) + coalesce(w.h, 0) LIMIT 100"""
    ):
        report.bad("holds", f"account {user_id}/{asset} holds {hold}, its orders {orders_hold}")


def _expected_hold(o: OrderState, r: Rules) -> int | None:
    if o.type == "market":
        if o.status != "pending":
            return None
        return o.funds if o.side == "buy" else o.size_lots * r.lot  # type: ignore[operator]
    assert o.open_lots is not None
    return r.live_hold(o.side, o.price_ticks, o.open_lots)


def _ledger(conn: psycopg.Connection, report: Report) -> None:
    for balance_id, balance, ledger in conn.execute(
        """SELECT b.id, b.available + b.hold, coalesce(l.s, 0) FROM balances b
           LEFT JOIN (SELECT balance_id, sum(amount) AS s FROM ledger_entries GROUP BY 1) l
             ON l.balance_id = b.id
           WHERE b.available + b.hold <> coalesce(l.s, 0) LIMIT 100"""
    ):
        report.bad("ledger", f"balance {balance_id} is {balance}, its ledger sums to {ledger}")
    for entry_id, missing in conn.execute(
        """SELECT l.id, CASE WHEN b.id IS NULL THEN 'balance ' || l.balance_id
                             WHEN l.order_id IS NOT NULL AND o.id IS NULL
                             THEN 'order ' || l.order_id ELSE 'product ' || l.product_id END
           FROM ledger_entries l
           LEFT JOIN balances b ON b.id = l.balance_id
           LEFT JOIN orders o ON o.id = l.order_id
           LEFT JOIN products p ON p.id = l.product_id
           WHERE b.id IS NULL
              OR (l.order_id IS NOT NULL AND o.id IS NULL)
              OR (l.product_id IS NOT NULL AND p.id IS NULL)
           LIMIT 100"""
    ):
        report.bad("ledger", f"ledger entry {entry_id} names {missing}, which does not exist")


def _trades(conn: psycopg.Connection, report: Report) -> None:
    row = conn.execute("SELECT count(*) FROM trades").fetchone()
    report.counts["trades"] = int(row[0]) if row else 0
    for product_id, trade_id, problem in conn.execute(
        """SELECT t.product_id, t.trade_id, CASE
             WHEN m.id IS NULL OR k.id IS NULL OR p.id IS NULL
               THEN 'its maker, taker or product does not exist'
             WHEN m.product_id <> t.product_id OR k.product_id <> t.product_id
               THEN 'an order of another product'
             WHEN m.side <> t.maker_side THEN 'maker side differs'
             WHEN k.side = t.maker_side THEN 'taker on the maker''s side'
             WHEN m.type <> 'limit' OR m.price <> t.price THEN 'not at the maker''s price'
             WHEN m.user_id = k.user_id THEN 'a self-trade'
             WHEN t.funds <> t.price * t.size / (10::numeric ^ a.exponent)
               THEN 'funds is not price x size'
           END
           FROM trades t
           LEFT JOIN orders m ON m.id = t.maker_order_id
           LEFT JOIN orders k ON k.id = t.taker_order_id
           LEFT JOIN products p ON p.id = t.product_id
           LEFT JOIN assets a ON a.id = p.base_asset
           WHERE m.id IS NULL OR k.id IS NULL OR p.id IS NULL
              OR m.product_id <> t.product_id OR k.product_id <> t.product_id
              OR m.side <> t.maker_side OR k.side = t.maker_side OR m.type <> 'limit'
              OR m.price <> t.price OR m.user_id = k.user_id
              OR t.funds <> t.price * t.size / (10::numeric ^ a.exponent)
           LIMIT 100"""
    ):
        report.bad("trades", f"{product_id} trade {trade_id}: {problem}")
    for oid, filled, value, fees, t_size, t_funds, t_fees in conn.execute(
        """WITH sides AS (
             SELECT maker_order_id AS id, size, funds, maker_fee AS fee FROM trades
             UNION ALL SELECT taker_order_id, size, funds, taker_fee FROM trades),
           sums AS (SELECT id, sum(size) s, sum(funds) f, sum(fee) e FROM sides GROUP BY id)
           SELECT o.id, o.filled_size, o.executed_value, o.fill_fees,
                  coalesce(s.s, 0), coalesce(s.f, 0), coalesce(s.e, 0)
           FROM orders o LEFT JOIN sums s ON s.id = o.id
           WHERE o.filled_size <> coalesce(s.s, 0) OR o.executed_value <> coalesce(s.f, 0)
              OR o.fill_fees <> coalesce(s.e, 0)
           LIMIT 100"""
    ):
        report.bad(
            "trades",
            f"order {oid}: filled/value/fees {filled}/{value}/{fees} "
            f"but its trades sum to {t_size}/{t_funds}/{t_fees}",
        )


def _replay(
    conn: psycopg.Connection, product_id: str, report: Report, start: checkpoints.Checkpoint | None
) -> checkpoints.Checkpoint | None:
    """Check 5 for one product, from `start` if given and still valid, else from seq 0.

    Returns a checkpoint at product_state.last_seq if the product's replay found nothing wrong.
    """
    r = Rules.of(product_id)
    check = f"replay {product_id}"
    state = conn.execute(
        "SELECT last_seq, last_trade_id FROM product_state WHERE product_id = %s", (product_id,)
    ).fetchone()
    if state is None:
        report.bad(check, "no product_state row")
        return None
    last_seq, last_trade_id = int(state[0]), int(state[1])
    resumed = None
    if start is not None:
        found = checkpoints.resume(conn, start, r, (last_seq, last_trade_id))
        if isinstance(found, str):
            report.bad(check, f"checkpoint at seq {start.seq} {found}; replayed from seq 0 instead")
        else:
            resumed = found
    if resumed is not None and start is not None:  # not `if resumed`: an empty book is falsy
        book, base_seq, base_trade = resumed, start.seq, start.last_trade_id
    else:
        book, base_seq, base_trade = r.new_book(), 0, 0
    from_checkpoint = resumed is not None
    report.counts[f"{product_id} replayed from seq"] = base_seq
    bounds = {"product": product_id, "seq": base_seq, "trade_id": base_trade}

    # From a checkpoint: the submits after it, and every cancel after it (of an order accepted
    # before or after). An explicit cancel at or before it would break the sequence: reported.
    if from_checkpoint:
        which = "accepted_seq > %(seq)s OR cancel_seq > %(seq)s"
    else:
        which = "accepted_seq IS NOT NULL OR cancel_seq IS NOT NULL"
    commands: list[tuple[int, str, OrderState]] = []
    for row in conn.cursor(row_factory=order_row).execute(
        f"""SELECT {ORDER_COLUMNS} FROM orders
            WHERE product_id = %(product)s AND ({which})""",
        bounds,
    ):
        o = OrderState.from_row(row, r)
        if o.accepted_seq is not None and (not from_checkpoint or o.accepted_seq > base_seq):
            commands.append((o.accepted_seq, "submit", o))
        if row.cancel_seq is not None:
            commands.append((row.cancel_seq, "cancel", o))
    commands.sort(key=lambda c: c[0])

    # An order's command is built from what it was placed with (price, size, funds, flags),
    # which settlement never changes, so the row as it ended gives the same command.
    fills: list[Fill] = []
    for seq, kind, o in commands:
        if book.seq + 1 != seq:
            report.bad(check, f"{kind} of {o.id} is at seq {seq}, the replay is at {book.seq}")
            return None
        events = book.submit(o.command()) if kind == "submit" else book.cancel(o.id)
        fills.extend(e for e in events if type(e) is Fill)
    if book.seq != last_seq:
        report.bad(check, f"replay ends at seq {book.seq}, product_state.last_seq is {last_seq}")

    after = "AND trade_id > %(trade_id)s" if from_checkpoint else ""
    stored = conn.execute(
        f"""SELECT trade_id, seq, maker_order_id, taker_order_id, price, size, funds, maker_fee,
              taker_fee FROM trades WHERE product_id = %(product)s {after} ORDER BY seq""",
        bounds,
    ).fetchall()
    replayed = [
        (
            i,
            f.seq,
            str(f.maker_id),
            str(f.taker_id),
            f.price * r.tick,
            f.size * r.lot,
            f.notional,
            f.maker_fee,
            f.taker_fee,
        )
        for i, f in enumerate(fills, base_trade + 1)
    ]
    got = [(int(t[0]), int(t[1]), str(t[2]), str(t[3]), *(int(x) for x in t[4:])) for t in stored]
    if got != replayed:
        first = next(
            (i for i, (a, b) in enumerate(zip(got, replayed, strict=False)) if a != b),
            min(len(got), len(replayed)),
        )
        report.bad(
            check,
            f"{len(got)} trades stored, {len(replayed)} replayed; first difference at "
            f"#{base_trade + first}: {got[first] if first < len(got) else None} vs "
            f"{replayed[first] if first < len(replayed) else None}",
        )
    last_stored = got[-1][0] if got else base_trade
    if last_stored != last_trade_id:
        report.bad(check, f"last trade id {last_stored} != product_state {last_trade_id}")

    # Always in full: the open orders must be exactly the replayed book's resting orders.
    open_rows = conn.execute(
        "SELECT id, size, filled_size, stp_size, seq FROM orders "
        "WHERE product_id = %s AND status = 'open'",
        (product_id,),
    ).fetchall()
    in_db = {(str(i), r.lots(int(s) - int(f) - int(x)), int(q)) for i, s, f, x, q in open_rows}
    snapshot = book.snapshot()
    in_book = {(row["id"], row["size"], row["priority"]) for row in snapshot["orders"]}
    if in_db != in_book:
        report.bad(
            check,
            f"open orders differ: {len(in_db - in_book)} only in Postgres, "
            f"{len(in_book - in_db)} only in the replayed book",
        )
    report.counts[f"{product_id} events replayed"] = book.seq - base_seq
    if report.failed(check):
        return None
    return checkpoints.Checkpoint(
        product_id,
        book.seq,
        last_trade_id,
        snapshot,
        checkpoints.digest(conn, product_id, book.seq, last_trade_id),
    )
