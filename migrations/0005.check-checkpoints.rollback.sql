DROP TABLE check_checkpoints;
