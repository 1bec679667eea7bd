-- The stock functions: the only code that changes items.stock. Each is one
-- round trip, callable as a plain RPC (PostgREST: POST /rpc/co_reserve_order).
--
-- Errors they raise, mapped by the server to API codes:
--   CK400 invalid_request   DETAIL names the field
--   CK404 item_not_found    DETAIL is the item id
--   CK409 out_of_stock      DETAIL is the item id
--   CK410 order_not_found   DETAIL is the order id
-- Lock order, everywhere: the order row first, then item rows by id. Row locks are
-- FOR NO KEY UPDATE (what an UPDATE of stock takes anyway): FOR UPDATE would also
-- block the foreign-key checks of concurrent inserts into order_lines and the ledger.

CREATE FUNCTION co_item_available(p_item_id uuid) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT stock FROM items WHERE id = p_item_id
$$;
COMMENT ON FUNCTION co_item_available(uuid) IS 'Units free to reserve; NULL for an unknown item.';

-- Normalises a cart: [{"item_id":"<uuid>","quantity":n}, ...] -> one row per
-- item with quantities summed, so one item is never checked twice against the
-- same stock. Raises CK400 on anything malformed.
CREATE FUNCTION co_cart_lines(p_items jsonb)
RETURNS TABLE (item_id uuid, quantity integer)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e jsonb;
    i integer := 0;
BEGIN
    IF p_items IS NULL OR jsonb_typeof(p_items) <> 'array' THEN
        RAISE EXCEPTION 'items must be an array' USING ERRCODE = 'CK400', DETAIL = 'items';
    END IF;
    IF jsonb_array_length(p_items) = 0 THEN
        RAISE EXCEPTION 'items must not be empty' USING ERRCODE = 'CK400', DETAIL = 'items';
    END IF;
    IF jsonb_array_length(p_items) > 100 THEN
        RAISE EXCEPTION 'at most 100 lines' USING ERRCODE = 'CK400', DETAIL = 'items';
    END IF;
    FOR e IN SELECT * FROM jsonb_array_elements(p_items) LOOP
        IF jsonb_typeof(e) <> 'object' OR jsonb_typeof(e->'item_id') IS DISTINCT FROM 'string'
           OR (e->>'item_id') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            RAISE EXCEPTION 'items[%].item_id must be a uuid', i
                USING ERRCODE = 'CK400', DETAIL = format('items[%s].item_id', i);
        END IF;
        IF jsonb_typeof(e->'quantity') IS DISTINCT FROM 'number'
           OR (e->>'quantity') !~ '^[0-9]{1,4}$'
           OR (e->>'quantity')::integer NOT BETWEEN 1 AND 1000 THEN
            RAISE EXCEPTION 'items[%].quantity must be an integer from 1 to 1000', i
                USING ERRCODE = 'CK400', DETAIL = format('items[%s].quantity', i);
        END IF;
        i := i + 1;
    END LOOP;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(p_items) AS x
                GROUP BY lower(x->>'item_id') HAVING sum((x->>'quantity')::integer) > 1000) THEN
        RAISE EXCEPTION 'at most 1000 units of one item' USING ERRCODE = 'CK400', DETAIL = 'items';
    END IF;
    RETURN QUERY
        SELECT (x->>'item_id')::uuid, sum((x->>'quantity')::integer)::integer
        FROM jsonb_array_elements(p_items) AS x
        GROUP BY 1;
END
$$;

-- The check half of a reservation: locks the item rows of an order's lines in
-- id order and names the first item short of its line (NULL when all are
-- covered). Changes nothing. The comparison is made in the loop, after each
-- row is locked: as a WHERE on the locking query, Postgres may filter a row
-- on its old version before locking it, and a row that then changes under
-- the lock wait would be neither locked nor checked (oversold; seen at 64
-- threads).
CREATE FUNCTION co_stock_short(p_order_id uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT i.id, i.stock, l.quantity
          FROM order_lines l JOIN items i ON i.id = l.item_id
         WHERE l.order_id = p_order_id
         ORDER BY i.id
           FOR NO KEY UPDATE OF i
    LOOP
        IF r.stock < r.quantity THEN
            RETURN r.id;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Takes the units of an order's lines: checks every line under the item
-- locks (co_stock_short), then decrements all, writes the ledger and marks the
-- order as holding stock. Returns NULL on success, else the id of the first
-- short item, having changed nothing. The caller holds the order row.
CREATE FUNCTION co_take_stock(p_order_id uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    short uuid := co_stock_short(p_order_id);
BEGIN
    IF short IS NOT NULL THEN
        RETURN short;
    END IF;
    UPDATE items i SET stock = i.stock - l.quantity
      FROM order_lines l
     WHERE l.order_id = p_order_id AND i.id = l.item_id;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT item_id, -quantity, 'reserve', p_order_id FROM order_lines WHERE order_id = p_order_id;
    UPDATE orders SET stock_held = true, updated_at = now() WHERE id = p_order_id;
    RETURN NULL;
END
$$;

-- Creates an order for a cart, priced from the catalogue. Raises CK400 for a
-- malformed cart or mixed currencies, CK404 for an unknown item. The order is
-- 'pending' with no stock held.
CREATE FUNCTION co_create_order(p_order_id uuid, p_user_id uuid, p_items jsonb,
                                p_flow text DEFAULT 'server', p_payment_method text DEFAULT NULL)
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
    -- Lock the items first, in id order, with the lock the reservation takes
    -- anyway. The foreign-key checks of the inserts below would otherwise take
    -- KEY SHARE locks on rows others are updating: on a hot item that piles up
    -- multixacts and cut throughput 6x at 32 clients (make bench).
    PERFORM 1 FROM items WHERE id = ANY (ids) ORDER BY id FOR NO KEY UPDATE;
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

-- Reserves all lines of a pending order, or raises CK409 naming the short item
-- and changes nothing. Idempotent: an order that already holds stock is left as it is.
CREATE FUNCTION co_reserve_order(p_order_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    held boolean;
    short uuid;
BEGIN
    SELECT stock_held INTO held FROM orders WHERE id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % not found', p_order_id USING ERRCODE = 'CK410', DETAIL = p_order_id::text;
    END IF;
    IF held THEN
        RETURN;
    END IF;
    short := co_take_stock(p_order_id);
    IF short IS NOT NULL THEN
        RAISE EXCEPTION 'item % is out of stock', short USING ERRCODE = 'CK409', DETAIL = short::text;
    END IF;
END
$$;

-- Gives back an order's units. Returns true when this call released them,
-- false when the order held nothing (released before, or never reserved).
CREATE FUNCTION co_release_order(p_order_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    held boolean;
BEGIN
    SELECT stock_held INTO held FROM orders WHERE id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % not found', p_order_id USING ERRCODE = 'CK410', DETAIL = p_order_id::text;
    END IF;
    IF NOT held THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM items i JOIN order_lines l ON l.item_id = i.id
     WHERE l.order_id = p_order_id ORDER BY i.id FOR NO KEY UPDATE OF i;
    UPDATE items i SET stock = i.stock + l.quantity
      FROM order_lines l
     WHERE l.order_id = p_order_id AND i.id = l.item_id;
    INSERT INTO stock_ledger (item_id, delta, kind, order_id)
        SELECT item_id, quantity, 'release', p_order_id FROM order_lines WHERE order_id = p_order_id;
    UPDATE orders SET stock_held = false, updated_at = now() WHERE id = p_order_id;
    RETURN true;
END
$$;

-- Adds units to an item, once per event id. became_available is true when
-- the item went from 0 to some: then every waiting shopper gets one
-- notification in the outbox, in this same transaction, and their
-- subscription is consumed. A replayed event id changes nothing (applied = false).
CREATE FUNCTION co_restock(p_event_id text, p_item_id uuid, p_quantity integer)
RETURNS TABLE (applied boolean, became_available boolean, stock integer, notified integer)
LANGUAGE plpgsql AS $$
DECLARE
    old_stock integer;
    n integer := 0;
BEGIN
    IF p_event_id IS NULL OR length(p_event_id) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'event_id must be 1 to 255 characters' USING ERRCODE = 'CK400', DETAIL = 'event_id';
    END IF;
    IF p_quantity IS NULL OR p_quantity <= 0 OR p_quantity > 1000000 THEN
        RAISE EXCEPTION 'quantity must be a positive integer' USING ERRCODE = 'CK400', DETAIL = 'quantity';
    END IF;
    SELECT i.stock INTO old_stock FROM items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % not found', p_item_id USING ERRCODE = 'CK404', DETAIL = p_item_id::text;
    END IF;
    INSERT INTO restock_events (event_id, item_id, quantity, became_available)
        VALUES (p_event_id, p_item_id, p_quantity, old_stock = 0)
        ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, false, old_stock, 0;
        RETURN;
    END IF;
    UPDATE items SET stock = items.stock + p_quantity WHERE id = p_item_id;
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

-- Creates a catalogue item with its opening stock recorded in the ledger.
CREATE FUNCTION co_create_item(p_sku text, p_name text, p_price bigint, p_currency text, p_stock integer)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    new_id uuid;
BEGIN
    INSERT INTO items (sku, name, price, currency, stock)
        VALUES (p_sku, p_name, p_price, p_currency, p_stock) RETURNING id INTO new_id;
    IF p_stock > 0 THEN
        INSERT INTO stock_ledger (item_id, delta, kind) VALUES (new_id, p_stock, 'initial');
    END IF;
    RETURN new_id;
END
$$;

-- Invariant 1 as a query: every row here is a broken item (empty = healthy).
-- stock must equal the ledger's sum, and equal opening stock + restocks - units
-- held by orders that hold stock.
CREATE VIEW stock_audit AS
    SELECT i.id, i.stock,
           coalesce(l.total, 0) AS ledger_total,
           coalesce(l.supplied, 0) - coalesce(h.held, 0) AS expected
    FROM items i
    LEFT JOIN (SELECT item_id, sum(delta) AS total,
                      sum(delta) FILTER (WHERE kind IN ('initial', 'restock')) AS supplied
               FROM stock_ledger GROUP BY item_id) l ON l.item_id = i.id
    LEFT JOIN (SELECT ol.item_id, sum(ol.quantity) AS held
               FROM order_lines ol JOIN orders o ON o.id = ol.order_id
               WHERE o.stock_held GROUP BY ol.item_id) h ON h.item_id = i.id
    WHERE i.stock < 0
       OR i.stock <> coalesce(l.total, 0)
       OR i.stock <> coalesce(l.supplied, 0) - coalesce(h.held, 0);
COMMENT ON VIEW stock_audit IS 'SPEC invariant 1. Empty when every unit is accounted for.';
