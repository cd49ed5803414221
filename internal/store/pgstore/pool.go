package pgstore

import (
	"context"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// statementCacheCapacity is the pgx statement cache of the connections
// that OpenPools opens: the statements about one worker, prepared once
// per partition (256 of each), and the others. pgx's default of 512 would
// evict them as a fleet's heartbeats go round the partitions.
const statementCacheCapacity = 4096

// OpenPools opens the two pools of a store (NewSplit's) on cfg, whose
// MaxConns is the DSN's pool_max_conns (or pgxpool's default, the larger
// of 4 and the number of CPUs): writes get half the connections, rounded
// up, and reads the rest, so that long reads (listings, lease walks)
// never hold the connections that heartbeats wait for; pool_min_conns
// splits the same way. With pool_max_conns=1 there is one pool, returned
// as both. The connections' statement cache holds statementCacheCapacity
// statements unless the DSN sets statement_cache_capacity. cfg itself is
// left as it is.
func OpenPools(ctx context.Context, cfg *pgxpool.Config) (writes, reads *pgxpool.Pool, err error) {
	cfg = cfg.Copy()
	if !strings.Contains(cfg.ConnString(), "statement_cache_capacity") {
		cfg.ConnConfig.StatementCacheCapacity = statementCacheCapacity
	}
	wcfg, rcfg := splitPool(cfg)
	if writes, err = pgxpool.NewWithConfig(ctx, wcfg); err != nil {
		return nil, nil, err
	}
	if rcfg == nil {
		return writes, writes, nil
	}
	if reads, err = pgxpool.NewWithConfig(ctx, rcfg); err != nil {
		writes.Close()
		return nil, nil, err
	}
	return writes, reads, nil
}

// splitPool splits cfg into the configurations of the pool that writes
// and the pool that reads (see OpenPools); reads is nil when cfg allows
// fewer than 2 connections.
func splitPool(cfg *pgxpool.Config) (writes, reads *pgxpool.Config) {
	if cfg.MaxConns < 2 {
		return cfg, nil
	}
	writes, reads = cfg, cfg.Copy()
	writes.MaxConns, reads.MaxConns = (cfg.MaxConns+1)/2, cfg.MaxConns/2
	writes.MinConns, reads.MinConns = min((cfg.MinConns+1)/2, writes.MaxConns), min(cfg.MinConns/2, reads.MaxConns)
	return writes, reads
}

// Prepare reads what the store needs of the database before its first
// statement: which partition holds each partition key, so that statements
// about one worker name it, and the server's max_connections, against
// poolMaxConns (both pools together, 0 when unknown), for the error that
// says which to change when the server runs out of connections. Without
// it, the store reads the partitions at its first routed statement
// outside a transaction. When poolMaxConns is more connections than the
// server accepts (max_connections less superuser_reserved_connections),
// it logs a warning to logger that names both settings.
func (s *Store) Prepare(ctx context.Context, poolMaxConns int, logger *slog.Logger) error {
	if err := s.route.loadPartitions(ctx, s.pool); err != nil {
		return err
	}
	var maxConnections, reserved int
	err := s.pool.QueryRow(ctx, `SELECT current_setting('max_connections')::integer,
		current_setting('superuser_reserved_connections')::integer`).Scan(&maxConnections, &reserved)
	if err != nil {
		return err
	}
	s.lim.poolMaxConns, s.lim.maxConnections = poolMaxConns, maxConnections
	if poolMaxConns > maxConnections-reserved {
		logger.Warn("registry: pool_max_conns is more connections than the server's max_connections accepts (less superuser_reserved_connections): lower pool_max_conns in the DSN or raise max_connections on the server",
			"pool_max_conns", poolMaxConns, "max_connections", maxConnections, "superuser_reserved_connections", reserved)
	}
	return nil
}
