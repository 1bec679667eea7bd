-- Statements that may run twice. checkoutd runs each write as one statement
-- in autocommit (src/co_db.c co_db_call); when the connection breaks while
-- the statement runs, the commit may have happened or not, and the statement
-- is run again on a new connection. Each write recognises its own earlier
-- effect, so the second run answers what the first would have:
--
--   co_checkout_begin  the key's order is the order id this request chose
--                      (states/checkout.c carries on with it);
--   co_transition      the order is already where the move was taking it
--                      (states/transition.c goes on from there; an event's
--                      move is recorded with the event, so its second run is
--                      a duplicate and the webhook is answered as one);
--   co_record_event, co_notify_result, co_checkout_respond, subscriptions:
--                      setting the same thing twice is the same;
--   claims (co_claim_stalled, co_notify_claim): the first run's rows stay
--                      leased to this process until the lease lapses, then
--                      are claimed again: later, never twice at once;
--   co_create_item and co_restock (below): they now take the id of the
--                      attempt, chosen by the caller once for all its runs.

-- An item made with the id its caller chose: a second run finds it.
CREATE FUNCTION co_create_item(p_sku text, p_name text, p_price bigint, p_currency text,
                               p_stock integer, p_id uuid)
RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM items WHERE id = p_id) THEN
        RETURN p_id; -- this call's first run committed
    END IF;
    INSERT INTO items (id, sku, name, price, currency, stock)
        VALUES (p_id, p_sku, p_name, p_price, p_currency, p_stock);
    IF p_stock > 0 THEN
        INSERT INTO stock_ledger (item_id, delta, kind) VALUES (p_id, p_stock, 'initial');
    END IF;
    RETURN p_id;
END
$$;

-- The RPC form (sql/0009: service_role calls it) makes its id here, and has
-- the one body above.
CREATE OR REPLACE FUNCTION co_create_item(p_sku text, p_name text, p_price bigint,
                                          p_currency text, p_stock integer)
RETURNS uuid
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT co_create_item(p_sku => p_sku, p_name => p_name, p_price => p_price,
                          p_currency => p_currency, p_stock => p_stock,
                          p_id => gen_random_uuid());
$$;

-- A restock event's id is applied once (co_restock); the attempt that applied
-- it, and what it answered, are kept with it, so that attempt run again gets
-- the same answer, while any other delivery of the event is a replay.
ALTER TABLE restock_events ADD COLUMN attempt uuid,
                           ADD COLUMN stock_after integer,
                           ADD COLUMN notified integer;

CREATE FUNCTION co_restock(p_event_id text, p_item_id uuid, p_quantity integer, p_attempt uuid)
RETURNS TABLE (applied boolean, became_available boolean, stock integer, notified integer)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT e.became_available, e.stock_after, e.notified INTO r
      FROM restock_events e WHERE e.event_id = p_event_id AND e.attempt = p_attempt;
    IF FOUND THEN
        RETURN QUERY SELECT true, r.became_available, r.stock_after, r.notified;
        RETURN;
    END IF;
    SELECT * INTO r FROM co_restock(p_event_id => p_event_id, p_item_id => p_item_id,
                                    p_quantity => p_quantity);
    IF r.applied THEN
        UPDATE restock_events e SET attempt = p_attempt, stock_after = r.stock,
                                    notified = r.notified
         WHERE e.event_id = p_event_id;
    END IF;
    RETURN QUERY SELECT r.applied, r.became_available, r.stock, r.notified;
END
$$;
