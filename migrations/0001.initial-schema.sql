-- The first schema. Every amount is an integer count of its asset's internal unit (satoshi, wei,
-- 1e-8 USD) in NUMERIC(78,0): exact, and wide enough for wei (BIGINT is not).
-- A price is the quote's internal units per one whole unit of base.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL,
    is_system     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key               text PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id),
    secret_ciphertext bytea NOT NULL,
    passphrase_hash   text NOT NULL,
    permissions       text[] NOT NULL CHECK (permissions <@ ARRAY['view', 'trade', 'transfer']),
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE assets (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    exponent          smallint NOT NULL CHECK (exponent BETWEEN 0 AND 18),
    kind              text NOT NULL CHECK (kind IN ('crypto', 'fiat')),
    funding_increment numeric NOT NULL CHECK (funding_increment > 0),
    status            text NOT NULL DEFAULT 'online'
);

CREATE TABLE products (
    id               text PRIMARY KEY,
    base_asset       text NOT NULL REFERENCES assets (id),
    quote_asset      text NOT NULL REFERENCES assets (id),
    tick             numeric NOT NULL CHECK (tick > 0),
    lot              numeric NOT NULL CHECK (lot > 0),
    min_size         numeric NOT NULL CHECK (min_size > 0),
    min_market_funds numeric NOT NULL CHECK (min_market_funds > 0),
    maker_fee_rate   numeric NOT NULL CHECK (maker_fee_rate >= 0 AND maker_fee_rate < 1),
    taker_fee_rate   numeric NOT NULL CHECK (taker_fee_rate >= 0 AND taker_fee_rate < 1),
    status           text NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'offline', 'delisted')),
    status_message   text NOT NULL DEFAULT '',
    trading_disabled boolean NOT NULL DEFAULT false,
    post_only        boolean NOT NULL DEFAULT false,
    limit_only       boolean NOT NULL DEFAULT false,
    cancel_only      boolean NOT NULL DEFAULT false,
    CHECK (base_asset <> quote_asset)
);

-- One row per (user, asset): Coinbase calls it an account. balance = available + hold.
CREATE TABLE balances (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    asset      text NOT NULL REFERENCES assets (id),
    available  numeric(78, 0) NOT NULL DEFAULT 0 CHECK (available >= 0),
    hold       numeric(78, 0) NOT NULL DEFAULT 0 CHECK (hold >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, asset)
);

-- Per product: the sequence of the last event the matcher committed (its fence) and trade ids.
CREATE TABLE product_state (
    product_id    text PRIMARY KEY REFERENCES products (id),
    last_seq      bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_trade_id bigint NOT NULL DEFAULT 0 CHECK (last_trade_id >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id),
    client_oid     uuid,
    product_id     text NOT NULL REFERENCES products (id),
    side           text NOT NULL CHECK (side IN ('buy', 'sell')),
    type           text NOT NULL CHECK (type IN ('limit', 'market')),
    price          numeric(78, 0) CHECK (price > 0),
    size           numeric(78, 0) CHECK (size > 0),
    funds          numeric(78, 0) CHECK (funds > 0),
    time_in_force  text NOT NULL DEFAULT 'GTC' CHECK (time_in_force IN ('GTC', 'IOC', 'FOK')),
    post_only      boolean NOT NULL DEFAULT false,
    stp            text NOT NULL DEFAULT 'dc' CHECK (stp IN ('dc', 'co', 'cn', 'cb')),
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'open', 'done', 'rejected')),
    done_reason    text CHECK (done_reason IN ('filled', 'canceled', 'self_trade', 'rejected')),
    reject_reason  text,
    hold_asset     text NOT NULL REFERENCES assets (id),
    hold_amount    numeric(78, 0) NOT NULL DEFAULT 0 CHECK (hold_amount >= 0),
    filled_size    numeric(78, 0) NOT NULL DEFAULT 0 CHECK (filled_size >= 0),
    executed_value numeric(78, 0) NOT NULL DEFAULT 0 CHECK (executed_value >= 0),
    fill_fees      numeric(78, 0) NOT NULL DEFAULT 0 CHECK (fill_fees >= 0),
    seq            bigint,  -- the product sequence at which it rested: its time priority
    created_at     timestamptz NOT NULL DEFAULT now(),
    done_at        timestamptz,
    CHECK (type = 'market' OR (price IS NOT NULL AND size IS NOT NULL)),
    CHECK (size IS NOT NULL OR funds IS NOT NULL),
    CHECK (status <> 'done' OR hold_amount = 0)
);
CREATE UNIQUE INDEX orders_client_oid ON orders (user_id, client_oid) WHERE client_oid IS NOT NULL;
CREATE INDEX orders_user_created ON orders (user_id, created_at DESC, id);
CREATE INDEX orders_live ON orders (product_id, seq) WHERE status IN ('pending', 'open');

CREATE TABLE trades (
    product_id     text NOT NULL REFERENCES products (id),
    trade_id       bigint NOT NULL,
    seq            bigint NOT NULL,
    maker_order_id uuid NOT NULL REFERENCES orders (id),
    taker_order_id uuid NOT NULL REFERENCES orders (id),
    maker_side     text NOT NULL CHECK (maker_side IN ('buy', 'sell')),
    price          numeric(78, 0) NOT NULL CHECK (price > 0),
    size           numeric(78, 0) NOT NULL CHECK (size > 0),
    funds          numeric(78, 0) NOT NULL CHECK (funds > 0),
    maker_fee      numeric(78, 0) NOT NULL CHECK (maker_fee >= 0),
    taker_fee      numeric(78, 0) NOT NULL CHECK (taker_fee >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, trade_id),
    UNIQUE (product_id, seq),
    CHECK (maker_order_id <> taker_order_id)
);
CREATE INDEX trades_maker ON trades (maker_order_id);
CREATE INDEX trades_taker ON trades (taker_order_id);

CREATE TABLE deposit_addresses (
    address    text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    asset      text NOT NULL REFERENCES assets (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deposit_addresses_user ON deposit_addresses (user_id, asset);

CREATE TABLE deposits (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    asset         text NOT NULL REFERENCES assets (id),
    amount        numeric(78, 0) NOT NULL CHECK (amount > 0),
    address       text,
    txid          text,
    vout          integer,
    confirmations integer NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'completed', 'canceled', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    UNIQUE (txid, vout)  -- a chain output is credited once, however often it is seen
);
CREATE INDEX deposits_user ON deposits (user_id, created_at DESC);

CREATE TABLE withdrawals (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    asset        text NOT NULL REFERENCES assets (id),
    amount       numeric(78, 0) NOT NULL CHECK (amount > 0),
    fee          numeric(78, 0) NOT NULL DEFAULT 0 CHECK (fee >= 0),
    address      text NOT NULL,
    txid         text,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'completed', 'canceled', 'failed')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    canceled_at  timestamptz
);
CREATE INDEX withdrawals_user ON withdrawals (user_id, created_at DESC);

-- Every balance change, in the transaction that makes it: the audit trail behind /ledger.
CREATE TABLE ledger_entries (
    id          bigserial PRIMARY KEY,
    balance_id  uuid NOT NULL REFERENCES balances (id),
    amount      numeric(78, 0) NOT NULL CHECK (amount <> 0),  -- signed change of the balance
    balance     numeric(78, 0) NOT NULL CHECK (balance >= 0),  -- the balance after it
    type        text NOT NULL CHECK (type IN ('transfer', 'match', 'fee', 'rebate', 'conversion')),
    order_id    uuid REFERENCES orders (id),
    product_id  text REFERENCES products (id),
    trade_id    bigint,
    transfer_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_balance ON ledger_entries (balance_id, id DESC);
