-- +goose Up

-- Version 7 adds the registry's columns and indexes to FlowFabric's
-- Postgres tables. The SQLite store added its own at version 4; the version
-- exists here so that both stores number the same change alike.
SELECT 1;

-- +goose Down
SELECT 1;
