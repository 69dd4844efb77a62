-- depends: 0002.matcher
-- Market data history: candles are computed from trades by time range (REST candles beyond
-- what Redis keeps, and the matcher's rebuild of the last 48 h of 1-minute candles).
CREATE INDEX trades_product_time ON trades (product_id, created_at);
