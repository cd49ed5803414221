-- +goose Up

-- Version 6 gives the Postgres store's tables FlowFabric's partitioned
-- shape. The SQLite store took FlowFabric's shape at version 3; the version
-- exists here so that both stores number the same change alike.
SELECT 1;

-- +goose Down
SELECT 1;
