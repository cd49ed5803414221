package pgstore

import (
	"context"

	"github.com/flowfabric/workerregistry/db/pgdb"
)

// RoutedStatement is what the router made of one sqlc statement.
type RoutedStatement struct {
	Name  string
	Text  string // sqlc's, naming the parent tables
	Arg   int    // the partition key argument, -1 when not routed
	Texts [256]string
}

// RoutedStatements returns the statements the router has seen.
func (s *Store) RoutedStatements() []RoutedStatement {
	var out []RoutedStatement
	s.route.stmts.Range(func(k, v any) bool {
		st := v.(*routedStmt)
		out = append(out, RoutedStatement{Name: st.name, Text: k.(string), Arg: st.arg, Texts: st.texts})
		return true
	})
	return out
}

// Partitions returns the quoted name of the partition of table that holds
// key, "" when the router does not know it.
func (s *Store) Partition(table string, key int16) string {
	p := s.route.parts.Load()
	if p == nil || (*p)[table] == nil {
		return ""
	}
	return (*p)[table][key]
}

// Unrouted stops s from routing: every statement names the parent
// tables, and s runs the statements it would route.
func (s *Store) Unrouted() *Store {
	s.route.parents = true
	return s
}

// RoutedQueries is the names of the statements that the router routes.
var RoutedQueries = routedQueries

// PartitionKey is the engine's partition key of an instance ID.
var PartitionKey = partitionKey

// SplitPool is OpenPools's split of a pool configuration.
var SplitPool = splitPool

// SweepStatement is the sweep's statement for one batch of the partition
// part, as the store runs it, with its arguments for nowMS and limit; with
// moving, the delete of a batch whose events it then moves.
func SweepStatement(part string, nowMS int64, limit int, moving bool) (string, []any, error) {
	query, args, err := sqlcStatement(func(q *pgdb.Queries) error {
		if moving {
			_, err := q.DeleteExpiredPartitionRows(context.Background(), pgdb.DeleteExpiredPartitionRowsParams{NowMs: nowMS, BatchSize: int64(limit)})
			return err
		}
		_, err := q.SweepExpiredPartition(context.Background(), pgdb.SweepExpiredPartitionParams{NowMs: nowMS, BatchSize: int64(limit)})
		return err
	})
	return onPartition(query, part), args, err
}
