package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flowfabric/workerregistry/internal/store/pgstore"
)

// TestSplitPool: writes get half of pool_max_conns, rounded up, and reads
// the rest, pool_min_conns alike; one connection is one pool.
func TestSplitPool(t *testing.T) {
	for _, c := range []struct {
		max, min                                 int32
		writesMax, writesMin, readsMax, readsMin int32
		split                                    bool
	}{
		{1, 1, 1, 1, 0, 0, false},
		{2, 0, 1, 0, 1, 0, true},
		{4, 1, 2, 1, 2, 0, true},
		{5, 5, 3, 3, 2, 2, true},
		{8, 3, 4, 2, 4, 1, true},
	} {
		cfg, err := pgxpool.ParseConfig("postgres://u@h/db")
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns, cfg.MinConns = c.max, c.min
		writes, reads := pgstore.SplitPool(cfg)
		if got := reads != nil; got != c.split {
			t.Fatalf("max %d: split %v, want %v", c.max, got, c.split)
		}
		if writes.MaxConns != c.writesMax || writes.MinConns != c.writesMin {
			t.Errorf("max %d, min %d: writes %d, %d; want %d, %d", c.max, c.min, writes.MaxConns, writes.MinConns, c.writesMax, c.writesMin)
		}
		if reads != nil && (reads.MaxConns != c.readsMax || reads.MinConns != c.readsMin) {
			t.Errorf("max %d, min %d: reads %d, %d; want %d, %d", c.max, c.min, reads.MaxConns, reads.MinConns, c.readsMax, c.readsMin)
		}
	}
}
