-- The stock functions as an RPC surface (Supabase / PostgREST: POST /rpc/<name>),
-- made safe to expose:
--   1. no role but the owner may execute any function, now or later;
--   2. co_rpc_grants() gives the roles of a Supabase-style setup (anon,
--      authenticated, service_role) what each may call, and nothing else;
--   3. a reservation made through the functions alone (co_create_order +
--      co_reserve_order) expires: it holds its stock for
--      checkout.rpc_reservation_ttl_seconds (900), and the recovery sweep
--      (co_claim_stalled) then releases it; stock_held_overdue lists stock
--      held past its expiry.

-- ---------------------------------------------------------------- 1. nobody by default

-- Postgres lets PUBLIC (every role) execute a new function. These functions
-- change stock and orders: only their owner (the role that runs the
-- migrations, which checkoutd connects as) executes them, and whoever it grants.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
-- And the functions this role creates from now on (later migrations, run as
-- the same role). Global, not IN SCHEMA: a per-schema default can only add to
-- the global one, never take PUBLIC's EXECUTE away.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The RPC functions run with their owner's rights, so a caller needs EXECUTE
-- on them and nothing else: the roles below get no privilege on any table, and
-- reach stock and orders only through these functions. search_path is pinned
-- so a caller cannot put its own objects in the way. (A migration that
-- replaces one of them with CREATE OR REPLACE must say both again, as
-- co_reserve_order's below does.)
ALTER FUNCTION co_item_available(uuid) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION co_create_order(uuid, uuid, jsonb, text, text)
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION co_release_order(uuid) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION co_restock(text, uuid, integer) SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION co_create_item(text, text, bigint, text, integer)
    SECURITY DEFINER SET search_path = public, pg_temp;

-- ---------------------------------------------------------------- 2. the grants

-- Applies the grants of a Supabase-style setup to those of the three roles
-- that exist (others are skipped; the names are parameters so that a test can
-- use its own roles), and returns the roles it applied them to. Idempotent:
-- run it again after creating the roles, or after a migration.
--
--   service_role (a trusted backend)  the six RPC functions: co_create_order,
--                                     co_reserve_order, co_release_order,
--                                     co_restock, co_create_item, co_item_available
--   authenticated, anon               co_item_available only
--
-- Why shoppers get no more: co_create_order takes the user id as an argument
-- (anyone could order as anyone), and co_reserve_order / co_release_order act
-- on any order by id (holding stock, or giving back a confirmed order's units).
-- A shopper buys through checkoutd's HTTP API, which authenticates them, or
-- through a service_role backend that does.
--
-- Everything else in the schema is taken from the three roles: EXECUTE on every
-- other function (Supabase grants them all by default), and from anon and
-- authenticated every privilege on the tables and sequences (orders hold other
-- shoppers' data; items.stock is changed only by the functions), also for
-- tables and functions this role creates later.
CREATE FUNCTION co_rpc_grants(p_anon text DEFAULT 'anon',
                              p_authenticated text DEFAULT 'authenticated',
                              p_service text DEFAULT 'service_role')
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    done text[] := '{}';
BEGIN
    FOREACH r IN ARRAY ARRAY[p_anon, p_authenticated, p_service] LOOP
        CONTINUE WHEN r IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM %I', r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES REVOKE ALL ON FUNCTIONS FROM %I', r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON FUNCTIONS FROM %I', r);
        IF r = p_service THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION co_create_order(uuid, uuid, jsonb, text, text),'
                           ' co_reserve_order(uuid), co_release_order(uuid),'
                           ' co_restock(text, uuid, integer),'
                           ' co_create_item(text, text, bigint, text, integer),'
                           ' co_item_available(uuid) TO %I', r);
        ELSE
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES REVOKE ALL ON TABLES FROM %I', r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM %I', r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES REVOKE ALL ON SEQUENCES FROM %I', r);
            EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM %I', r);
            EXECUTE format('GRANT EXECUTE ON FUNCTION co_item_available(uuid) TO %I', r);
        END IF;
        done := done || r;
    END LOOP;
    RETURN done;
END
$$;
COMMENT ON FUNCTION co_rpc_grants(text, text, text) IS
  'Grants of a Supabase-style setup (README, "Stock"): service_role the six RPC functions, '
  'anon and authenticated co_item_available only, and no table. Skips roles that do not exist.';

-- ---------------------------------------------------------------- 3. RPC reservations expire

-- How long a reservation made with co_reserve_order holds its stock. A setting,
-- not an argument, so co_reserve_order keeps its one-argument signature:
-- ALTER DATABASE ... SET checkout.rpc_reservation_ttl_seconds = '600' (or SET in
-- a session). 900 s (like RESERVATION_TTL_SECONDS) when unset; 1 s to 7 days.
CREATE FUNCTION co_rpc_reservation_ttl() RETURNS integer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text := current_setting('checkout.rpc_reservation_ttl_seconds', true);
BEGIN
    IF v IS NULL OR v = '' THEN
        RETURN 900;
    END IF;
    IF v !~ '^[0-9]{1,6}$' OR v::integer NOT BETWEEN 1 AND 604800 THEN
        RAISE EXCEPTION 'checkout.rpc_reservation_ttl_seconds must be 1 to 604800, not %', v
            USING ERRCODE = 'CK400', DETAIL = 'checkout.rpc_reservation_ttl_seconds';
    END IF;
    RETURN v::integer;
END
$$;

-- Reserves all lines of a pending order, or raises CK409 naming the short item
-- and changes nothing; idempotent (an order that holds its stock is left as it
-- is). As in 0002, plus: the reservation expires co_rpc_reservation_ttl()
-- seconds from now (reservation_expires_at), and an order that is no longer
-- pending (it expired, failed, ...) is refused with CK410 instead of taking
-- stock again. checkoutd never calls this (its checkouts reserve in
-- co_checkout_begin and leave 'pending' in the same transaction): only RPC
-- callers do, so every order it reserves is one no saga drives.
CREATE OR REPLACE FUNCTION co_reserve_order(p_order_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    st text;
    held boolean;
    short uuid;
BEGIN
    SELECT status, stock_held INTO st, held FROM orders WHERE id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order % not found', p_order_id USING ERRCODE = 'CK410', DETAIL = p_order_id::text;
    END IF;
    IF held THEN
        RETURN;
    END IF;
    IF st <> 'pending' THEN
        RAISE EXCEPTION 'order % is %: only a pending order can be reserved', p_order_id, st
            USING ERRCODE = 'CK410', DETAIL = p_order_id::text;
    END IF;
    short := co_take_stock(p_order_id);
    IF short IS NOT NULL THEN
        RAISE EXCEPTION 'item % is out of stock', short USING ERRCODE = 'CK409', DETAIL = short::text;
    END IF;
    UPDATE orders SET reservation_expires_at = now() + make_interval(secs => co_rpc_reservation_ttl())
     WHERE id = p_order_id;
END
$$;

-- Ends up to p_limit RPC reservations past their expiry: each pending order
-- that holds stock with reservation_expires_at passed gives its units back
-- and becomes 'expired' (with its history row), in one transaction. There is
-- no payment to cancel (no saga ever drove such an order), so this is a
-- database move only. Several servers can run it at once (SKIP LOCKED).
-- Returns the orders it expired.
CREATE FUNCTION co_expire_rpc_reservations(p_limit integer) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    it uuid;
    buckets boolean := to_regclass('public.item_buckets') IS NOT NULL;
BEGIN
    SELECT array_agg(s.id ORDER BY s.id) INTO ids FROM (
        SELECT o.id FROM orders o
         WHERE o.status = 'pending' AND o.stock_held AND o.reservation_expires_at < now()
         ORDER BY o.reservation_expires_at
         LIMIT p_limit
           FOR NO KEY UPDATE SKIP LOCKED) s;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    -- Every row that holds units of their items, all before the first
    -- release and in the lock order of 0002 (items by id) and of 0007 where it
    -- ran (within an item, its row, then its buckets in bucket order):
    -- releasing the orders one after another would take those locks out of
    -- order across orders, and could deadlock with a checkout of several
    -- items. The releases below then find every lock they need held.
    FOR it IN SELECT DISTINCT l.item_id FROM order_lines l WHERE l.order_id = ANY (ids)
               ORDER BY l.item_id LOOP
        PERFORM 1 FROM items i WHERE i.id = it FOR NO KEY UPDATE;
        IF buckets THEN
            -- Planned only when reached: without 0007 there is no such table.
            -- Read after the item row is held, so it is the current bucket set.
            PERFORM 1 FROM item_buckets x WHERE x.item_id = it
             ORDER BY x.bucket FOR NO KEY UPDATE;
        END IF;
    END LOOP;
    PERFORM co_release_order(x) FROM unnest(ids) AS x;
    UPDATE orders SET status = 'expired', lease_owner = NULL, lease_until = NULL, updated_at = now()
     WHERE id = ANY (ids);
    INSERT INTO order_history (order_id, from_status, to_status, reason)
        SELECT x, 'pending', 'expired', 'reservation_expired' FROM unnest(ids) AS x;
    RETURN QUERY SELECT unnest(ids);
END
$$;

-- The recovery sweep of 0003, which every checkoutd runs every
-- RECOVERY_INTERVAL_MS, now first expires lapsed RPC reservations
-- (co_expire_rpc_reservations; the saga has nothing to do with those, so their
-- ids are not returned), then claims stalled sagas exactly as before.
CREATE OR REPLACE FUNCTION co_claim_stalled(p_owner text, p_lease_seconds integer, p_limit integer)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM co_expire_rpc_reservations(p_limit);
    RETURN QUERY
    UPDATE orders o
       SET lease_owner = p_owner,
           lease_until = now() + make_interval(secs => p_lease_seconds),
           attempts = o.attempts + 1
     WHERE o.id IN (
        SELECT id FROM orders
         WHERE ((status IN ('reserved', 'authorized', 'captured', 'voiding', 'refunding')
                 AND (lease_until IS NULL OR lease_until < now()))
             OR (status = 'awaiting_payment' AND reservation_expires_at < now()
                 AND (lease_until IS NULL OR lease_until < now())))
         ORDER BY lease_until NULLS FIRST
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED)
    RETURNING o.id;
END
$$;

-- Reservations made before this migration had no expiry: they get one now.
UPDATE orders SET reservation_expires_at = now() + make_interval(secs => co_rpc_reservation_ttl())
 WHERE status = 'pending' AND stock_held AND reservation_expires_at IS NULL;

-- Stock held by unpaid reservations past their expiry (or, for a pending
-- order, with none): one row per order line. A row may show for up to one
-- sweep (RECOVERY_INTERVAL_MS) while a checkoutd runs; one that stays means
-- nothing sweeps, and its units are kept from other shoppers.
CREATE VIEW stock_held_overdue AS
    SELECT o.id AS order_id, o.status, o.flow, l.item_id, l.quantity,
           o.reservation_expires_at, now() - o.reservation_expires_at AS overdue_by
      FROM orders o JOIN order_lines l ON l.order_id = o.id
     WHERE o.stock_held
       AND ((o.status IN ('pending', 'reserved', 'awaiting_payment')
             AND o.reservation_expires_at < now())
            OR (o.status = 'pending' AND o.reservation_expires_at IS NULL));
COMMENT ON VIEW stock_held_overdue IS
  'Units held by unpaid reservations past their expiry. Empty, or cleared within a sweep, '
  'while a checkoutd runs recovery.';

-- On a Supabase-style database whose roles already exist, the grants now.
SELECT co_rpc_grants();
