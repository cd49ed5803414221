package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowfabric/workerregistry/db/pgdb"
	"github.com/flowfabric/workerregistry/internal/store"
)

// The sweep, partition by partition, as the engine's tick sweeps
// (ttl_sweep_tick in FlowFabric's Postgres worker registry). No index
// orders workers by expiry, so finding expired rows is a scan; a
// statement that names the parent table would plan and scan all 256
// partitions per batch, and one whose batch joins to the parent probes
// every partition per row. So:
//
//   - one statement (the probe) asks every partition, by name, whether it
//     has a row expired at the sweep's time: one round trip, one scan of
//     the table with nothing expired, stopping at a partition's first
//     expired row otherwise;
//   - the partitions that have one are swept in order
//     (SweepExpiredPartition, with the partition's name in place of the
//     parent's), in transactions of at most a batch of rows each. A batch
//     one of whose ttl_swept events finds its key taken is rolled back and
//     written again with DeleteExpiredPartitionRows and InsertEvents, which
//     moves such an event to the next free millisecond.
//
// The statements come from sqlc (queries/postgres/workers.sql), which
// writes them against the parent as "ff_worker_registry AS" an alias;
// sqlcStatement reads their text and arguments from the generated code.

// sweepTable matches the text the partitioned statements name the parent
// by, "ff_worker_registry AS" and an alias.
var sweepTable = regexp.MustCompile(`\bff_worker_registry AS (\w+)\b`)

// sweepPlan is what a Store's sweeps reuse: the names of the partitions,
// in order, and the probe over them.
type sweepPlan struct {
	partitions []string // as regclass text: quoted, qualified when not on the search path
	probe      string   // returns the indexes into partitions of those with an expired row
	sweeps     []string // SweepExpiredPartition on each partition, by index
	deletes    []string // DeleteExpiredPartitionRows, likewise
}

// sweepPlans caches a Store's sweepPlan once made: a table's partitions do
// not change under a registry.
type sweepPlans struct {
	mu   sync.Mutex
	plan *sweepPlan
}

func (p *sweepPlans) get(ctx context.Context, s *Store) (*sweepPlan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plan != nil {
		return p.plan, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT c.oid::regclass::text FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'ff_worker_registry'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	partitions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if len(partitions) == 0 {
		partitions = []string{"ff_worker_registry"} // not partitioned: one "partition"
	}
	exists, _, err := sqlcStatement(func(q *pgdb.Queries) error {
		_, err := q.AnyExpiredWorker(ctx, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	var probe strings.Builder
	probe.WriteString("SELECT array_remove(ARRAY[")
	for i, part := range partitions {
		if i > 0 {
			probe.WriteString(",\n")
		}
		fmt.Fprintf(&probe, "CASE WHEN (\n%s\n) THEN %d END", onPartition(exists, part), i)
	}
	probe.WriteString("], NULL)::int[]")
	sweep, _, err := sqlcStatement(func(q *pgdb.Queries) error {
		_, err := q.SweepExpiredPartition(ctx, pgdb.SweepExpiredPartitionParams{})
		return err
	})
	if err != nil {
		return nil, err
	}
	del, _, err := sqlcStatement(func(q *pgdb.Queries) error {
		_, err := q.DeleteExpiredPartitionRows(ctx, pgdb.DeleteExpiredPartitionRowsParams{})
		return err
	})
	if err != nil {
		return nil, err
	}
	plan := &sweepPlan{partitions: partitions, probe: probe.String(),
		sweeps: make([]string, len(partitions)), deletes: make([]string, len(partitions))}
	for i, part := range partitions {
		plan.sweeps[i], plan.deletes[i] = onPartition(sweep, part), onPartition(del, part)
	}
	p.plan = plan
	return p.plan, nil
}

// onPartition returns query, which names the parent as sweepTable, with
// part in its place.
func onPartition(query, part string) string {
	return sweepTable.ReplaceAllString(query, strings.ReplaceAll(part, "$", "$$")+" AS $1")
}

// sweepBatchSize is the most rows a sweep transaction removes: at this
// size one stays well under 50 ms, so that other writers never wait long
// behind a large sweep.
const sweepBatchSize = 1000

// SweepExpired probes every partition for an expired row in one statement,
// then sweeps the partitions that have one, in transactions of at most
// sweepBatchSize rows: a transaction goes on to the next partition while
// it has room, so that a sweep of one batch is atomic as on SQLite. A
// batch one of whose events finds its key taken rolls back and runs again,
// moving such events to the next free millisecond. Rows that other
// transactions hold are skipped, left for the next sweep; with nothing
// expired it writes nothing.
func (s *Store) SweepExpired(ctx context.Context, nowMS int64, swept func(n int)) (int, error) {
	plan, err := s.sweeps.get(ctx, s)
	if err != nil {
		return 0, err
	}
	// A generic plan, made once per connection: a plan of the probe for
	// its argument (as Postgres makes the first five) takes tens of
	// milliseconds, more than one sweep's round trips. The probe scans
	// the table, a read: it runs on the reads' pool, so that it holds no
	// connection that a heartbeat waits for.
	var expired []int32
	err = pgx.BeginTxFunc(ctx, s.read, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := s.txQueries(tx).UseGenericPlans(ctx); err != nil {
			return err
		}
		return tx.QueryRow(ctx, plan.probe, nowMS).Scan(&expired)
	})
	if err != nil {
		return 0, fmt.Errorf("probe partitions for expired workers: %w", s.lim.explain(err))
	}
	parts := expired
	var total int
	for len(parts) > 0 {
		var n int
		var left []int32
		batch := func(moveEvents bool) error {
			return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
				n, left = 0, parts
				// Each partition's statement is planned once per connection,
				// not five times for its arguments first (milliseconds each).
				q := s.txQueries(tx)
				if _, err := q.UseGenericPlans(ctx); err != nil {
					return err
				}
				for len(left) > 0 && n < sweepBatchSize {
					limit := sweepBatchSize - n
					k, err := sweepPartition(ctx, tx, q, plan, left[0], nowMS, limit, moveEvents)
					if err != nil {
						return err
					}
					n += k
					if k < limit {
						left = left[1:] // nothing more expired there, or only rows others hold
					}
				}
				return nil
			})
		}
		err := batch(false)
		if errors.Is(err, errEventKeysTaken) {
			err = batch(true)
		}
		if err != nil {
			return total, s.lim.explain(err)
		}
		parts = left
		total += n
		swept(n)
	}
	return total, nil
}

// errEventKeysTaken fails a sweep batch one of whose ttl_swept events
// found its key taken: the batch is written again, moving such events.
var errEventKeysTaken = errors.New("a ttl_swept event's key was taken")

// sweepPartition sweeps up to limit rows of the partition plan.partitions[i]
// in tx with SweepExpiredPartition, failing with errEventKeysTaken when an
// event's key was taken; or, with moveEvents, deletes them with
// DeleteExpiredPartitionRows and writes their events with InsertEvents,
// which moves an event whose key is taken to the next free millisecond.
func sweepPartition(ctx context.Context, tx pgx.Tx, q *pgdb.Queries, plan *sweepPlan, i int32, nowMS int64, limit int, moveEvents bool) (int, error) {
	// The arguments, in sqlc's order; the text is the plan's, rewritten
	// once for each partition.
	_, args, err := sqlcStatement(func(q *pgdb.Queries) error {
		if moveEvents {
			_, err := q.DeleteExpiredPartitionRows(ctx, pgdb.DeleteExpiredPartitionRowsParams{NowMs: nowMS, BatchSize: int64(limit)})
			return err
		}
		_, err := q.SweepExpiredPartition(ctx, pgdb.SweepExpiredPartitionParams{NowMs: nowMS, BatchSize: int64(limit)})
		return err
	})
	if err != nil {
		return 0, err
	}
	if !moveEvents {
		var row pgdb.SweepExpiredPartitionRow
		if err := tx.QueryRow(ctx, plan.sweeps[i], args...).Scan(&row.Swept, &row.Recorded); err != nil {
			return 0, fmt.Errorf("sweep %s: %w", plan.partitions[i], err)
		}
		if row.Recorded != row.Swept {
			return 0, errEventKeysTaken
		}
		return int(row.Swept), nil
	}
	rows, err := tx.Query(ctx, plan.deletes[i], args...)
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", plan.partitions[i], err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.InstanceKey, error) {
		var k store.InstanceKey
		return k, row.Scan(&k.Namespace, &k.InstanceID)
	})
	if err != nil {
		return 0, fmt.Errorf("sweep %s: %w", plan.partitions[i], err)
	}
	// In SweepExpiredPartition's order (COLLATE "C": bytes).
	slices.SortFunc(keys, func(a, b store.InstanceKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.InstanceID, b.InstanceID))
	})
	if err := (postgresQueries{q: q}).InsertEvents(ctx, store.EventTTLSwept, nowMS, keys); err != nil {
		return 0, err
	}
	return len(keys), nil
}

// sqlcStatement returns the text and arguments of the one statement that
// call runs through sqlc's generated code, without running it: the store
// runs it itself, rewritten.
func sqlcStatement(call func(q *pgdb.Queries) error) (string, []any, error) {
	var rec recordingDBTX
	if err := call(pgdb.New(&rec)); !errors.Is(err, errRecorded) {
		return "", nil, fmt.Errorf("reading sqlc's statement: %v", err)
	}
	return rec.query, rec.args, nil
}

var errRecorded = errors.New("statement recorded, not run")

// recordingDBTX is a pgdb.DBTX that keeps the statement it is given and
// runs nothing.
type recordingDBTX struct {
	query string
	args  []any
}

func (r *recordingDBTX) record(query string, args []any) {
	r.query, r.args = query, args
}

func (r *recordingDBTX) Exec(_ context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	r.record(query, args)
	return pgconn.CommandTag{}, errRecorded
}

func (r *recordingDBTX) Query(_ context.Context, query string, args ...any) (pgx.Rows, error) {
	r.record(query, args)
	return nil, errRecorded
}

func (r *recordingDBTX) QueryRow(_ context.Context, query string, args ...any) pgx.Row {
	r.record(query, args)
	return errRow{}
}

// SendBatch is for the :batch queries, which the sweep does not use.
func (r *recordingDBTX) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	panic("pgstore: a batch statement given to sqlcStatement")
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

var _ pgdb.DBTX = (*recordingDBTX)(nil)
