-- The seed's baseline for make bench: the bare SQL purchase, in a schema of its
-- own so that nothing of the product's schema (sql/) is involved or touched.
-- scripts/bench.sh loads it with psql -v nitems=N -v stock=S into a database of
-- its own and drives seed.buy_item with pgbench -M prepared (bench/seed_buy.pgbench).
--
-- buy_item is the smallest correct purchase: one function, one transaction, one
-- commit. It locks the item row FOR UPDATE, compares the stock after locking
-- (never in the WHERE of the locking query: a row skipped on its old version
-- is never locked), decrements it and inserts the order row. No idempotency,
-- no payment, no history, no ledger: the floor under any real checkout.
\set ON_ERROR_STOP on

CREATE SCHEMA seed;

CREATE TABLE seed.items (
    id     integer PRIMARY KEY,
    price  bigint NOT NULL CHECK (price > 0),
    stock  integer NOT NULL CHECK (stock >= 0)
);

CREATE TABLE seed.orders (
    id          bigserial PRIMARY KEY,
    item_id     integer NOT NULL REFERENCES seed.items (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    amount      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Returns the new order's id, or NULL when the item has too few units left
-- (nothing changed then). Raises for an unknown item.
CREATE FUNCTION seed.buy_item(p_item integer, p_quantity integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cur_stock integer;
    cur_price bigint;
    new_id bigint;
BEGIN
    SELECT stock, price INTO cur_stock, cur_price FROM seed.items WHERE id = p_item FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item % not found', p_item;
    END IF;
    IF cur_stock < p_quantity THEN
        RETURN NULL;
    END IF;
    UPDATE seed.items SET stock = stock - p_quantity WHERE id = p_item;
    INSERT INTO seed.orders (item_id, quantity, amount)
        VALUES (p_item, p_quantity, cur_price * p_quantity)
        RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- Item 1 is the hot item; items 1..nitems are the spread catalogue.
INSERT INTO seed.items (id, price, stock)
    SELECT g, 1999, :stock FROM generate_series(1, :nitems) AS g;
ANALYZE seed.items;
