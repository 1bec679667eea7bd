-- Hot-item mode (issue 9). A reservation locks the row that holds the item's
-- stock until it commits, so one item sells at most 1 / (lock hold time,
-- commit included) per second however many shoppers wait. A hot item keeps
-- its free units in several bucket rows instead (item_buckets): concurrent
-- reservations lock different rows and commit together.
--
-- Where an item's free units are: items.stock plus the sum of its buckets
-- (co_item_available). An item that is not hot has no buckets. A hot item has
-- buckets 1..hot_buckets and items.stock is normally 0 (units moved into the
-- buckets by the next whole-item lock). The ledger stays per item: moving
-- units between the rows of one item is not a change of its stock.
--
-- Lock order, everywhere (extends 0002's): items by id; within an item, its
-- items row first, then its buckets in bucket order. Three ways to lock units
-- of a hot item (co_stock_lock):
--   1. any free bucket that holds the whole line, FOR NO KEY UPDATE SKIP
--      LOCKED: never waits;
--   2. all such buckets busy: wait for one of them (and nothing else);
--   3. no single bucket can serve the line, or the one waited for ran dry:
--      the item as a whole, its row and then every bucket in bucket order;
--      out of stock only when all of them together are short. What is left
--      is spread evenly over the buckets in the same transaction (rebalance).
-- A transaction that holds a bucket it took out of order (1 and 2) never
-- waits for anything of that item again, and 1 and 2 run in subtransactions
-- that are rolled back when they fail, releasing what they locked, so
-- nothing waits while holding a lock out of order: no deadlock.
--
-- Switched on by POST /v1/admin/items/{id}/hot (co_hot_set) and automatically
-- under contention (co_hot_rule); restocks and releases rebalance.

ALTER TABLE items
    ADD COLUMN hot_buckets integer NOT NULL DEFAULT 0 CHECK (hot_buckets BETWEEN 0 AND 64),
    ADD COLUMN hot_waits integer NOT NULL DEFAULT 0 CHECK (hot_waits >= 0),
    ADD COLUMN hot_window_start timestamptz;
COMMENT ON COLUMN items.stock IS
  'Free units held in the item row itself: all of them when hot_buckets = 0; for a hot item the rest '
  'are in item_buckets. Only the stock functions change it, each change of the item''s units with a '
  'stock_ledger row; read co_item_available(), never this column.';
COMMENT ON COLUMN items.hot_buckets IS
  'Hot-item mode: 0 = off (the default; stock in this row), N = the free units are spread over N '
  'item_buckets rows so that N reservations can hold a lock at once (sql/0007).';
COMMENT ON COLUMN items.hot_waits IS
  'Reservations of this item whose wait for its row lock reached co.hot_wait_ms, counted since '
  'hot_window_start; co.hot_waits of them within co.hot_window_s switch the item to hot mode '
  '(co_hot_rule). Written by the reservation that already holds the row: costs no extra lock.';

CREATE TABLE item_buckets (
    item_id  uuid NOT NULL REFERENCES items (id),
    bucket   integer NOT NULL CHECK (bucket BETWEEN 1 AND 64),
    stock    integer NOT NULL CHECK (stock >= 0),
    PRIMARY KEY (item_id, bucket)
) WITH (fillfactor = 50);
COMMENT ON TABLE item_buckets IS
  'The free units of a hot item, split so that reservations lock different rows. Rows exist only '
  'while the item is hot, numbered 1..items.hot_buckets (stock_audit checks both). Half-empty pages '
  '(fillfactor 50) keep the constant updates HOT.';

-- ------------------------------------------------------------- settings

-- An integer setting from the session's configuration (SET, ALTER DATABASE
-- ... SET, or options=-c in the connection string), p_default when it is unset
-- or not a plain number: a typo must not stop every checkout.
CREATE FUNCTION co_setting(p_name text, p_default integer) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s ~ '^[0-9]{1,6}$' THEN s::integer ELSE p_default END
      FROM (SELECT current_setting(p_name, true) AS s) x
$$;

-- The automatic switch: a reservation that waited at least wait_ms for an
-- item's row lock counts once; waits of them within window_s seconds (counted
-- from the first) switch the item to hot mode with buckets buckets, in the
-- transaction of the reservation that reached the count. waits = 0 turns the
-- rule off.
CREATE FUNCTION co_hot_rule(OUT wait_ms integer, OUT waits integer, OUT window_s integer,
                            OUT buckets integer)
LANGUAGE sql STABLE AS $$
    SELECT co_setting('co.hot_wait_ms', 20), co_setting('co.hot_waits', 50),
           co_setting('co.hot_window_s', 10),
           least(greatest(co_setting('co.hot_auto_buckets', 8), 1), 64)
$$;
COMMENT ON FUNCTION co_hot_rule() IS
  'Why automatic: a lock queue is the symptom hot mode cures, and the reservation that waited '
  'already holds the row, so counting costs no extra lock or round trip. Why these defaults: a '
  '20 ms wait means some twenty commits queued ahead; 50 of them in 10 s is sustained contention, '
  'not a burst. Settings co.hot_wait_ms, co.hot_waits (0: off), co.hot_window_s, co.hot_auto_buckets.';

-- The contention counter after one more reservation (waited: it counts).
CREATE FUNCTION co_hot_waits_next(p_waits integer, p_start timestamptz, p_waited boolean,
                                  p_window_s integer) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT p_waited THEN p_waits
                WHEN p_start > now() - make_interval(secs => p_window_s) THEN p_waits + 1
                ELSE 1 END
$$;
CREATE FUNCTION co_hot_window_next(p_start timestamptz, p_waited boolean, p_window_s integer)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT p_waited OR p_start > now() - make_interval(secs => p_window_s)
                THEN p_start ELSE now() END
$$;

-- Bucket k's share (1-based) when total units are spread evenly over n
-- buckets: the first total % n get one more.
CREATE FUNCTION co_share(p_total integer, p_n integer, p_k integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_total / p_n + CASE WHEN p_k <= p_total % p_n THEN 1 ELSE 0 END
$$;

-- ------------------------------------------------------------- reading

CREATE OR REPLACE FUNCTION co_item_available(p_item_id uuid) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT (i.stock + coalesce((SELECT sum(b.stock) FROM item_buckets b WHERE b.item_id = i.id),
                               0))::integer
      FROM items i WHERE i.id = p_item_id
$$;
COMMENT ON FUNCTION co_item_available(uuid) IS
  'Units free to reserve: the item row plus its buckets, read in one snapshot (a rebalance moves '
  'units between rows in one transaction, so the sum never sees them twice). NULL for an unknown item.';

-- An item's hot-item mode as the admin API shows it.
CREATE FUNCTION co_hot_json(p_item_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'object', 'item_hot_mode', 'item_id', i.id, 'buckets', i.hot_buckets,
        'stock_available', co_item_available(i.id),
        'bucket_stock', coalesce((SELECT jsonb_agg(b.stock ORDER BY b.bucket)
                                    FROM item_buckets b WHERE b.item_id = i.id), '[]'),
        'contended_waits', i.hot_waits)
      FROM items i WHERE i.id = p_item_id
$$;

-- ------------------------------------------------------------- switching

-- Switches an item to p_buckets buckets (0: off, the buckets merged back into
-- the item row; the same N again: an even rebalance). Locks the item row, then
-- every bucket in bucket order, so it waits for the reservations holding them
-- and none can start on a half-switched item. Raises CK400 (DETAIL buckets)
-- or CK404. Returns co_hot_json plus previous_buckets.
CREATE FUNCTION co_hot_set(p_item_id uuid, p_buckets integer) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    prev integer;
    row_stock integer;
    total integer;
BEGIN
    IF p_buckets IS NULL OR p_buckets NOT BETWEEN 0 AND 64 THEN
        RAISE EXCEPTION 'buckets must be an integer from 0 to 64'
            USING ERRCODE = 'CK400', DETAIL = 'buckets';
    END IF;
    SELECT i.stock, i.hot_buckets INTO row_stock, prev
      FROM items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % not found', p_item_id USING ERRCODE = 'CK404', DETAIL = p_item_id::text;
    END IF;
    SELECT row_stock + coalesce(sum(x.stock), 0) INTO total
      FROM (SELECT b.stock FROM item_buckets b WHERE b.item_id = p_item_id
             ORDER BY b.bucket FOR NO KEY UPDATE) x;
    DELETE FROM item_buckets b WHERE b.item_id = p_item_id AND b.bucket > p_buckets;
    IF p_buckets > 0 THEN
        INSERT INTO item_buckets (item_id, bucket, stock)
            SELECT p_item_id, k, co_share(total, p_buckets, k) FROM generate_series(1, p_buckets) k
            ON CONFLICT (item_id, bucket) DO UPDATE SET stock = excluded.stock;
    END IF;
    UPDATE items SET stock = CASE WHEN p_buckets = 0 THEN total ELSE 0 END,
                     hot_buckets = p_buckets, hot_waits = 0, hot_window_start = NULL
     WHERE id = p_item_id;
    RETURN co_hot_json(p_item_id) || jsonb_build_object('previous_buckets', prev);
END
$$;
COMMENT ON FUNCTION co_hot_set(uuid, integer) IS
  'Hot-item mode on (N buckets), off (0) or rebalanced (same N). Changes where the units are, never '
  'how many: no ledger row.';

-- ------------------------------------------------------------- taking

-- How one line will be taken, decided under the locks that make it hold:
-- deltas[k] units are added to bucket buckets[k] (bucket 0 is the item row);
-- they sum to -quantity. short: the item cannot cover the line (then nothing
-- is planned). contended: the line waited co.hot_wait_ms or more for the item
-- row's lock (counted by co_stock_apply).
CREATE TYPE co_stock_plan AS (item_id uuid, short boolean, buckets integer[], deltas integer[],
                              contended boolean);

-- Locks enough of an item to take p_qty units and plans the take; changes
-- nothing. p_whole takes the whole-item locks at once (the item row, then all
-- buckets): for a check whose take comes later in the transaction
-- (co_stock_short), which then finds everything it needs already held.
-- p_wait_ms: the contention threshold (NULL: co_hot_rule's). Callers lock
-- their items in id order and call this once per item.
CREATE FUNCTION co_stock_lock(p_item_id uuid, p_qty integer, p_whole boolean DEFAULT false,
                              p_wait_ms integer DEFAULT NULL)
RETURNS co_stock_plan
LANGUAGE plpgsql AS $$
DECLARE
    plan co_stock_plan;
    hot integer;
    row_stock integer;
    t0 timestamptz;
    b integer;
    s integer;
    bs integer[];
    ss integer[];
    total integer;
    rest integer;
BEGIN
    plan := (p_item_id, false, '{0}'::integer[], ARRAY[-p_qty], false)::co_stock_plan;
    SELECT i.hot_buckets INTO hot FROM items i WHERE i.id = p_item_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % not found', p_item_id USING ERRCODE = 'CK404', DETAIL = p_item_id::text;
    END IF;
    IF hot = 0 THEN
        t0 := clock_timestamp();
        SELECT i.stock, i.hot_buckets INTO row_stock, hot
          FROM items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
        plan.contended := clock_timestamp() - t0
                          >= make_interval(secs => coalesce(p_wait_ms, (co_hot_rule()).wait_ms)
                                                   / 1000.0);
        IF hot = 0 THEN
            plan.short := row_stock < p_qty;
            RETURN plan;
        END IF;
        -- Switched on while we waited for its row, which we now hold: the
        -- whole-item way continues in lock order.
        p_whole := true;
    END IF;

    IF NOT p_whole THEN
        -- 1. Any free bucket that holds the line. The comparison in the WHERE
        -- is re-checked on the latest version of a row that changed since the
        -- snapshot, but such a row stays locked when it fails: the
        -- subtransaction gives those back when nothing was found.
        BEGIN
            SELECT x.bucket, x.stock INTO b, s FROM item_buckets x
             WHERE x.item_id = p_item_id AND x.stock >= p_qty
             ORDER BY random() LIMIT 1
               FOR NO KEY UPDATE SKIP LOCKED;
            IF NOT FOUND OR s < p_qty THEN
                RAISE SQLSTATE 'CKH00';
            END IF;
        EXCEPTION WHEN SQLSTATE 'CKH00' THEN
            b := NULL;
        END;
        -- 2. Every such bucket is busy: wait for one of them, holding nothing
        -- else of this item, and compare after the lock (it may run dry while
        -- we wait; then the subtransaction gives it back).
        IF b IS NULL THEN
            SELECT x.bucket INTO b FROM item_buckets x
             WHERE x.item_id = p_item_id AND x.stock >= p_qty ORDER BY random() LIMIT 1;
            IF FOUND THEN
                BEGIN
                    SELECT x.stock INTO s FROM item_buckets x
                     WHERE x.item_id = p_item_id AND x.bucket = b FOR NO KEY UPDATE;
                    IF NOT FOUND OR s < p_qty THEN
                        RAISE SQLSTATE 'CKH00';
                    END IF;
                EXCEPTION WHEN SQLSTATE 'CKH00' THEN
                    b := NULL;
                END;
            END IF;
        END IF;
        IF b IS NOT NULL THEN
            plan.buckets := ARRAY[b];
            RETURN plan;
        END IF;
    END IF;

    -- 3. The whole item: its row, then every bucket in bucket order. The
    -- buckets are read by a statement that starts after we hold the row, so
    -- it sees the bucket set of the last switch (which needs the row).
    SELECT i.stock, i.hot_buckets INTO row_stock, hot
      FROM items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
    SELECT coalesce(array_agg(x.bucket ORDER BY x.bucket), '{}'),
           coalesce(array_agg(x.stock ORDER BY x.bucket), '{}')
      INTO bs, ss
      FROM (SELECT y.bucket, y.stock FROM item_buckets y WHERE y.item_id = p_item_id
             ORDER BY y.bucket FOR NO KEY UPDATE) x;
    total := row_stock + coalesce((SELECT sum(v) FROM unnest(ss) v), 0);
    IF total < p_qty THEN
        plan.short := true;
        plan.buckets := '{}';
        plan.deltas := '{}';
        RETURN plan;
    END IF;
    IF cardinality(bs) = 0 THEN
        RETURN plan; -- switched off meanwhile: the item row has it all
    END IF;
    -- Take the line and spread what is left evenly (the row's units too):
    -- the buckets that ran dry are refilled while we hold them all anyway.
    rest := total - p_qty;
    plan.buckets := '{0}'::integer[] || bs;
    plan.deltas := ARRAY[-row_stock]
                   || ARRAY(SELECT co_share(rest, cardinality(bs), k) - ss[k]
                              FROM generate_subscripts(bs, 1) k ORDER BY k);
    RETURN plan;
END
$$;
COMMENT ON FUNCTION co_stock_lock(uuid, integer, boolean, integer) IS
  'Hot-item reservations: skip busy buckets, wait only when every bucket that could serve is busy, '
  'short only when all buckets together are. See the head of sql/0007_hot_items.sql for why this '
  'cannot deadlock.';

-- Applies a plan of co_stock_lock under the locks it took. The item row's
-- update also counts a contended wait, and when that completes the count of
-- co_hot_rule the item is switched to hot mode here, in the same transaction
-- (we hold its row; it has no buckets yet).
CREATE FUNCTION co_stock_apply(p co_stock_plan) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rule record;
    waits integer;
BEGIN
    UPDATE item_buckets x SET stock = x.stock + d.delta
      FROM unnest(p.buckets, p.deltas) AS d(bucket, delta)
     WHERE x.item_id = p.item_id AND x.bucket = d.bucket AND d.bucket > 0 AND d.delta <> 0;
    IF p.buckets[1] = 0 AND (p.deltas[1] <> 0 OR p.contended) THEN
        rule := co_hot_rule();
        UPDATE items i
           SET stock = i.stock + p.deltas[1],
               hot_waits = co_hot_waits_next(i.hot_waits, i.hot_window_start, p.contended,
                                             rule.window_s),
               hot_window_start = co_hot_window_next(i.hot_window_start, p.contended,
                                                     rule.window_s)
         WHERE i.id = p.item_id AND i.hot_buckets = 0
        RETURNING i.hot_waits INTO waits;
        IF NOT FOUND THEN
            UPDATE items i SET stock = i.stock + p.deltas[1] WHERE i.id = p.item_id;
        ELSIF p.contended AND rule.waits > 0 AND waits >= rule.waits THEN
            PERFORM co_hot_set(p.item_id, rule.buckets);
        END IF;
    END IF;
END
$$;

-- The check half of a reservation (same contract as 0002): locks what the
-- order's lines need, items in id order, whole items (co_stock_lock p_whole),
-- and names the first item short of its line (NULL when all are covered).
-- Changes nothing; the co_take_stock that follows in the transaction
-- (co_transition's late authorization) finds every lock it needs held.
CREATE OR REPLACE FUNCTION co_stock_short(p_order_id uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    p co_stock_plan;
BEGIN
    FOR r IN SELECT l.item_id, l.quantity FROM order_lines l
              WHERE l.order_id = p_order_id ORDER BY l.item_id LOOP
        p := co_stock_lock(r.item_id, r.quantity, true);
        IF p.short THEN
            RETURN r.item_id;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Takes the units of an order's lines (same contract as 0002): locks and
-- plans every line in item id order, then applies all, writes the ledger and
-- marks the order as holding stock. Returns NULL on success, else the id of
-- the first short item, having changed nothing. The caller holds the order row.
CREATE OR REPLACE FUNCTION co_take_stock(p_order_id uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    p co_stock_plan;
    plans co_stock_plan[] := '{}';
    wait_ms integer := (co_hot_rule()).wait_ms;
BEGIN
    FOR r IN SELECT l.item_id, l.quantity FROM order_lines l
              WHERE l.order_id = p_order_id ORDER BY l.item_id LOOP
        p := co_stock_lock(r.item_id, r.quantity, false, wait_ms);
        IF p.short THEN
            RETURN r.item_id;
        END IF;
        plans := plans || p;
    END LOOP;
    FOREACH p IN ARRAY plans LOOP
        PERFORM co_stock_apply(p);
    END LOOP;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT item_id, -quantity, 'reserve', p_order_id FROM order_lines WHERE order_id = p_order_id;
    UPDATE orders SET stock_held = true, updated_at = now() WHERE id = p_order_id;
    RETURN NULL;
END
$$;

-- ------------------------------------------------------------- giving back

-- Adds p_qty units to an item: to the emptiest free bucket of a hot item
-- (which refills the dry ones), waiting for one bucket only when all are busy;
-- to the item row otherwise.
CREATE FUNCTION co_stock_give(p_item_id uuid, p_qty integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    hot integer;
    b integer;
BEGIN
    SELECT i.hot_buckets INTO hot FROM items i WHERE i.id = p_item_id;
    IF hot > 0 THEN
        -- No comparison in these WHEREs, so each locks exactly the row it returns.
        SELECT x.bucket INTO b FROM item_buckets x WHERE x.item_id = p_item_id
         ORDER BY x.stock, random() LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            SELECT x.bucket INTO b FROM item_buckets x WHERE x.item_id = p_item_id
             ORDER BY x.stock, random() LIMIT 1;
            IF FOUND THEN
                PERFORM 1 FROM item_buckets x WHERE x.item_id = p_item_id AND x.bucket = b
                    FOR NO KEY UPDATE;
                IF NOT FOUND THEN
                    b := NULL; -- removed by a switch while we waited
                END IF;
            END IF;
        END IF;
        IF b IS NOT NULL THEN
            UPDATE item_buckets x SET stock = x.stock + p_qty
             WHERE x.item_id = p_item_id AND x.bucket = b;
            RETURN;
        END IF;
    END IF;
    -- Not hot, or switched while we looked: the item row decides, and under
    -- it the bucket set cannot change.
    SELECT i.hot_buckets INTO hot FROM items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
    IF hot > 0 THEN
        SELECT x.bucket INTO b FROM item_buckets x WHERE x.item_id = p_item_id
         ORDER BY x.stock, x.bucket LIMIT 1 FOR NO KEY UPDATE;
        UPDATE item_buckets x SET stock = x.stock + p_qty
         WHERE x.item_id = p_item_id AND x.bucket = b;
    ELSE
        UPDATE items i SET stock = i.stock + p_qty WHERE i.id = p_item_id;
    END IF;
END
$$;

-- Gives back an order's units (same contract as 0002): true when this call
-- released them, false when the order held nothing.
CREATE OR REPLACE FUNCTION co_release_order(p_order_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    held boolean;
    r record;
BEGIN
    SELECT stock_held INTO held FROM orders WHERE id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % not found', p_order_id USING ERRCODE = 'CK410', DETAIL = p_order_id::text;
    END IF;
    IF NOT held THEN
        RETURN false;
    END IF;
    FOR r IN SELECT l.item_id, l.quantity FROM order_lines l
              WHERE l.order_id = p_order_id ORDER BY l.item_id LOOP
        PERFORM co_stock_give(r.item_id, r.quantity);
    END LOOP;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT item_id, quantity, 'release', p_order_id FROM order_lines WHERE order_id = p_order_id;
    UPDATE orders SET stock_held = false, updated_at = now() WHERE id = p_order_id;
    RETURN true;
END
$$;

-- Adds units once per event id (same contract as 0002). The item counts as
-- back when its row and all its buckets together held 0. A hot item's new
-- total is spread evenly over its buckets (the restock rebalances).
CREATE OR REPLACE FUNCTION co_restock(p_event_id text, p_item_id uuid, p_quantity integer)
RETURNS TABLE (applied boolean, became_available boolean, stock integer, notified integer)
LANGUAGE plpgsql AS $$
DECLARE
    row_stock integer;
    hot integer;
    nb integer;
    old_stock integer;
    n integer := 0;
BEGIN
    IF p_event_id IS NULL OR length(p_event_id) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'event_id must be 1 to 255 characters' USING ERRCODE = 'CK400', DETAIL = 'event_id';
    END IF;
    IF p_quantity IS NULL OR p_quantity <= 0 OR p_quantity > 1000000 THEN
        RAISE EXCEPTION 'quantity must be a positive integer' USING ERRCODE = 'CK400', DETAIL = 'quantity';
    END IF;
    SELECT i.stock, i.hot_buckets INTO row_stock, hot
      FROM items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % not found', p_item_id USING ERRCODE = 'CK404', DETAIL = p_item_id::text;
    END IF;
    SELECT row_stock + coalesce(sum(x.stock), 0), count(*) INTO old_stock, nb
      FROM (SELECT b.stock FROM item_buckets b WHERE b.item_id = p_item_id
             ORDER BY b.bucket FOR NO KEY UPDATE) x;
    INSERT INTO restock_events (event_id, item_id, quantity, became_available)
        VALUES (p_event_id, p_item_id, p_quantity, old_stock = 0)
        ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, false, old_stock, 0;
        RETURN;
    END IF;
    IF nb > 0 THEN
        UPDATE item_buckets b SET stock = co_share(old_stock + p_quantity, nb, b.bucket)
         WHERE b.item_id = p_item_id;
        UPDATE items SET stock = 0 WHERE id = p_item_id AND items.stock <> 0;
    ELSE
        UPDATE items SET stock = items.stock + p_quantity WHERE id = p_item_id;
    END IF;
    INSERT INTO stock_ledger (item_id, delta, kind, event_id) VALUES (p_item_id, p_quantity, 'restock', p_event_id);
    IF old_stock = 0 THEN
        WITH taken AS (
            DELETE FROM stock_subscriptions s WHERE s.item_id = p_item_id RETURNING s.user_id
        )
        INSERT INTO notification_outbox (item_id, user_id, restock_event_id)
            SELECT p_item_id, user_id, p_event_id FROM taken;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    RETURN QUERY SELECT true, old_stock = 0, old_stock + p_quantity, n;
END
$$;

-- ------------------------------------------------------------- orders

-- Same contract as 0002. The only change: the early item locks (taken so the
-- foreign-key checks below do not pile KEY SHARE locks on rows being
-- updated) skip hot items, whose row no reservation updates.
CREATE OR REPLACE FUNCTION co_create_order(p_order_id uuid, p_user_id uuid, p_items jsonb,
                                           p_flow text DEFAULT 'server',
                                           p_payment_method text DEFAULT NULL)
RETURNS TABLE (amount bigint, currency text)
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    qtys integer[];
    missing uuid;
    ncur integer;
BEGIN
    SELECT array_agg(c.item_id ORDER BY c.item_id), array_agg(c.quantity ORDER BY c.item_id)
      INTO ids, qtys FROM co_cart_lines(p_items) c;
    PERFORM 1 FROM items WHERE id = ANY (ids) AND hot_buckets = 0 ORDER BY id FOR NO KEY UPDATE;
    SELECT c.id INTO missing
      FROM unnest(ids) AS c(id) LEFT JOIN items i ON i.id = c.id
     WHERE i.id IS NULL ORDER BY c.id LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'item % not found', missing USING ERRCODE = 'CK404', DETAIL = missing::text;
    END IF;
    SELECT count(DISTINCT i.currency) INTO ncur FROM items i WHERE i.id = ANY (ids);
    IF ncur > 1 THEN
        RAISE EXCEPTION 'items are priced in different currencies' USING ERRCODE = 'CK400', DETAIL = 'items';
    END IF;
    INSERT INTO orders (id, user_id, status, flow, payment_method, amount, currency)
        SELECT p_order_id, p_user_id, 'pending', p_flow, p_payment_method,
               sum(i.price * c.q), min(i.currency)
        FROM unnest(ids, qtys) AS c(id, q) JOIN items i ON i.id = c.id;
    INSERT INTO order_lines (order_id, item_id, quantity, unit_price)
        SELECT p_order_id, c.id, c.q, i.price FROM unnest(ids, qtys) AS c(id, q) JOIN items i ON i.id = c.id;
    INSERT INTO order_history (order_id, from_status, to_status) VALUES (p_order_id, NULL, 'pending');
    RETURN QUERY SELECT o.amount, o.currency FROM orders o WHERE o.id = p_order_id;
END
$$;

-- The checkout's first commit (co_checkout_begin) takes its units from the
-- buckets too: its hot-aware body is in sql/0008_abuse_limits.sql, with the
-- abuse limits, so that it is written once.

-- ------------------------------------------------------------- invariant 1

-- Still one query: an item's stock is its row plus its buckets. Also broken:
-- a bucket below zero, and buckets that do not match the mode (buckets of an
-- item that is not hot are reached by no reservation: stranded units).
CREATE OR REPLACE VIEW stock_audit AS
    SELECT i.id, (i.stock + coalesce(b.total, 0))::integer AS stock,
           coalesce(l.total, 0) AS ledger_total,
           coalesce(l.supplied, 0) - coalesce(h.held, 0) AS expected,
           i.hot_buckets AS buckets, coalesce(b.n, 0) AS bucket_rows
    FROM items i
    LEFT JOIN (SELECT item_id, sum(stock) AS total, count(*) AS n, min(stock) AS low,
                      max(bucket) AS top
               FROM item_buckets GROUP BY item_id) b ON b.item_id = i.id
    LEFT JOIN (SELECT item_id, sum(delta) AS total,
                      sum(delta) FILTER (WHERE kind IN ('initial', 'restock')) AS supplied
               FROM stock_ledger GROUP BY item_id) l ON l.item_id = i.id
    LEFT JOIN (SELECT ol.item_id, sum(ol.quantity) AS held
               FROM order_lines ol JOIN orders o ON o.id = ol.order_id
               WHERE o.stock_held GROUP BY ol.item_id) h ON h.item_id = i.id
    WHERE i.stock < 0 OR coalesce(b.low, 0) < 0
       OR i.stock + coalesce(b.total, 0) <> coalesce(l.total, 0)
       OR i.stock + coalesce(b.total, 0) <> coalesce(l.supplied, 0) - coalesce(h.held, 0)
       OR coalesce(b.n, 0) <> i.hot_buckets OR coalesce(b.top, 0) <> i.hot_buckets;
COMMENT ON VIEW stock_audit IS
  'SPEC invariant 1, counting bucket stock (sql/0007). Empty when every unit is accounted for and '
  'every hot item has exactly buckets 1..hot_buckets.';
