ALTER TABLE ledger_entries
    ADD CONSTRAINT ledger_entries_balance_id_fkey FOREIGN KEY (balance_id) REFERENCES balances (id);
