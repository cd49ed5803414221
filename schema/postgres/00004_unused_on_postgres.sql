-- +goose Up

-- On SQLite, version 4 adds the registry's columns and indexes to
-- FlowFabric's tables under names of the registry's own. The Postgres store
-- made every object of its schema itself at versions 1 and 2; it has nothing
-- to add at this version, which exists so that both stores number the same
-- change alike.
SELECT 1;

-- +goose Down
SELECT 1;
