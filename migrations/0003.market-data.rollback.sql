DROP INDEX trades_product_time;
