-- Schema: catalogue, orders and their saga history, the stock ledger,
-- checkout idempotency, webhook/restock event dedup, back-in-stock outbox.

CREATE TABLE items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku         text NOT NULL UNIQUE CHECK (length(sku) BETWEEN 1 AND 64),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price       bigint NOT NULL CHECK (price > 0),
    currency    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    stock       integer NOT NULL CHECK (stock >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN items.price IS
  'Minor units (cents), above zero: a payment provider takes no zero charge. Orders copy it; '
  'clients never send prices.';
COMMENT ON COLUMN items.stock IS
  'Units free to reserve. Only the stock functions (0002) change it, each change with a stock_ledger row; '
  'read it through co_item_available() so the storage can change (hot-item split) without callers noticing.';

CREATE TABLE orders (
    id                     uuid PRIMARY KEY,
    user_id                uuid NOT NULL,
    status                 text NOT NULL CHECK (status IN (
                               'pending', 'reserved', 'awaiting_payment', 'authorized',
                               'captured', 'confirmed', 'voiding', 'refunding',
                               'failed', 'expired', 'cancelled', 'refunded')),
    flow                   text NOT NULL CHECK (flow IN ('server', 'mobile')),
    payment_method         text,
    amount                 bigint NOT NULL CHECK (amount >= 0),
    currency               text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    stock_held             boolean NOT NULL DEFAULT false,
    payment_intent         text UNIQUE,
    client_secret          text,
    failure_code           text,
    decline_code           text,
    failure_detail         text,
    reservation_expires_at timestamptz,
    compensate_to          text CHECK (compensate_to IN ('failed', 'expired', 'cancelled', 'refunded')),
    lease_owner            text,
    lease_until            timestamptz,
    attempts               integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (status NOT IN ('failed', 'expired', 'cancelled', 'refunded') OR NOT stock_held),
    CHECK (status <> 'failed' OR failure_code IS NOT NULL),
    CHECK (status NOT IN ('voiding', 'refunding') OR compensate_to IS NOT NULL)
);
COMMENT ON COLUMN orders.status IS
  'The saga state (states/saga.h says what holds in each). voiding/refunding are compensation in '
  'progress; compensate_to is the terminal state they end in.';
COMMENT ON COLUMN orders.failure_detail IS 'For out_of_stock: the item that was short.';
COMMENT ON COLUMN orders.stock_held IS
  'True while the order holds its lines'' units. Set by co_take_stock, cleared by co_release_order; '
  'a terminal order other than confirmed never holds stock.';
COMMENT ON COLUMN orders.lease_until IS
  'The worker driving this saga owns it until then; recovery picks up live orders whose lease lapsed.';
CREATE INDEX orders_live_idx ON orders (lease_until)
    WHERE status IN ('pending', 'reserved', 'awaiting_payment', 'authorized', 'captured',
                     'voiding', 'refunding');
CREATE INDEX orders_status_idx ON orders (status, id);
CREATE INDEX orders_user_idx ON orders (user_id);

CREATE TABLE order_lines (
    order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    item_id     uuid NOT NULL REFERENCES items (id),
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price  bigint NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, item_id)
);
COMMENT ON TABLE order_lines IS 'One row per item: duplicate cart lines are merged before insert.';

CREATE TABLE order_history (
    id          bigserial PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_status text,
    to_status   text NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE order_history IS 'The saga history: one row per transition, written in the transition''s transaction.';
CREATE INDEX order_history_order_idx ON order_history (order_id, id);

CREATE TABLE stock_ledger (
    id          bigserial PRIMARY KEY,
    item_id     uuid NOT NULL REFERENCES items (id),
    delta       integer NOT NULL CHECK (delta <> 0),
    kind        text NOT NULL CHECK (kind IN ('initial', 'reserve', 'release', 'restock')),
    order_id    uuid,
    event_id    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind IN ('reserve', 'release')) = (order_id IS NOT NULL)),
    CHECK ((kind = 'restock') = (event_id IS NOT NULL))
);
COMMENT ON TABLE stock_ledger IS
  'Append-only: every change of items.stock. Invariant: stock = sum(delta) per item (see stock_audit).';
CREATE INDEX stock_ledger_item_idx ON stock_ledger (item_id);

CREATE TABLE checkout_requests (
    user_id          uuid NOT NULL,
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash     text NOT NULL,
    order_id         uuid NOT NULL UNIQUE,
    response_status  integer,
    response_body    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);
COMMENT ON TABLE checkout_requests IS
  'Idempotency-Key of POST /v1/checkout, per shopper. response_* NULL while the first request runs; '
  'then the exact answer, replayed byte for byte.';

CREATE TABLE restock_events (
    event_id          text PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 255),
    item_id           uuid NOT NULL REFERENCES items (id),
    quantity          integer NOT NULL CHECK (quantity > 0),
    became_available  boolean NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE restock_events IS 'Each restock event id takes effect once: its row is written with the stock change.';

CREATE TABLE payment_events (
    event_id        text PRIMARY KEY,
    type            text NOT NULL,
    payment_intent  text,
    order_id        uuid,
    outcome         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE payment_events IS 'Each provider event id is applied at most once: recorded in the effect''s transaction.';

CREATE TABLE stock_subscriptions (
    item_id     uuid NOT NULL REFERENCES items (id),
    user_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, user_id)
);
COMMENT ON TABLE stock_subscriptions IS 'Shoppers waiting for an item; consumed when a restock queues their notification.';

CREATE TABLE notification_outbox (
    id               bigserial PRIMARY KEY,
    item_id          uuid NOT NULL REFERENCES items (id),
    user_id          uuid NOT NULL,
    restock_event_id text NOT NULL REFERENCES restock_events (event_id),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (restock_event_id, user_id)
);
COMMENT ON TABLE notification_outbox IS
  'Back-in-stock notifications, written in the restock''s transaction; a worker delivers them '
  '(FOR UPDATE SKIP LOCKED) with backoff, and marks them dead after too many attempts.';
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at) WHERE status = 'pending';
