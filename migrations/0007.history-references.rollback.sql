ALTER TABLE trades
    ADD CONSTRAINT trades_maker_order_id_fkey FOREIGN KEY (maker_order_id) REFERENCES orders (id),
    ADD CONSTRAINT trades_taker_order_id_fkey FOREIGN KEY (taker_order_id) REFERENCES orders (id),
    ADD CONSTRAINT trades_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id);
ALTER TABLE ledger_entries
    ADD CONSTRAINT ledger_entries_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id),
    ADD CONSTRAINT ledger_entries_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id);
