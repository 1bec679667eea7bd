-- The hot-item rule's settings (co_hot_rule, sql/0007) move from Postgres
-- settings (co.hot_*) to a table of one row. A setting made with ALTER
-- DATABASE reaches only the connections opened after it, and behind
-- pgbouncer's transaction pooling a SET reaches whichever client borrows that
-- server connection next: neither is a way to configure a shared database. A
-- row is the same for every connection at once, typed and checked (a value
-- that is no number cannot be stored). NULL means the default.
--
--   UPDATE co_hot_settings SET waits = 100;   -- takes effect at once
CREATE TABLE co_hot_settings (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    wait_ms      integer CHECK (wait_ms BETWEEN 0 AND 600000),
    waits        integer CHECK (waits BETWEEN 0 AND 1000000),
    window_s     integer CHECK (window_s BETWEEN 0 AND 86400),
    auto_buckets integer CHECK (auto_buckets BETWEEN 1 AND 64)
);
INSERT INTO co_hot_settings DEFAULT VALUES;
COMMENT ON TABLE co_hot_settings IS
  'The automatic hot-item switch (co_hot_rule): wait_ms (20), waits (50; 0: off), window_s (10), '
  'auto_buckets (8). One row; NULL is the default.';

-- The defaults, here only. Without the row (deleted by hand) the defaults hold.
CREATE OR REPLACE FUNCTION co_hot_rule(OUT wait_ms integer, OUT waits integer,
                                       OUT window_s integer, OUT buckets integer)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(s.wait_ms, 20), coalesce(s.waits, 50), coalesce(s.window_s, 10),
           coalesce(s.auto_buckets, 8)
      FROM (SELECT) d LEFT JOIN co_hot_settings s ON true
$$;

DROP FUNCTION co_setting(text, integer);
