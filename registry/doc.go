// Package registry tracks the liveness of job workers and tells an engine
// which job leases have expired.
//
// # Stores
//
// A Registry keeps its state in SQLite (a file on one host, the default)
// or in Postgres (a server that workers on many hosts share); Open picks
// the store from its argument. Both give the same results for the same
// calls: the behaviour in this package is written once, above per-store
// SQL that sqlc compiles, and one test suite runs against each store.
//
// # Liveness
//
// A registration is live at time t when t < LastHeartbeat + LivenessTTL.
// Every operation uses this one definition, and a registration that is not
// live behaves exactly as if it were absent, whether or not the sweep has
// removed it yet: a heartbeat or mark-dead on it reports NotRegistered, a
// register over it reports Registered, and listings leave it out.
//
// Each call takes its time from its args struct (Now); a zero Now means the
// registry's clock (see WithClock), read again once a write holds the locks
// it waited for (SQLite's write lock, a Postgres row's lock), so that a
// call that waited for another writer does not judge liveness, or set an
// expiry, at a time already past. Times are stored as milliseconds since
// the Unix epoch, so they are truncated to the millisecond. A call's time
// (Now, AsOf, a sweep's now, PruneEvents' before) must lie between 1970
// and the end of 9999, so that adding a TTL cannot overflow; a LeaseCursor
// stands for a stored expiry, so its time may be any that int64
// milliseconds hold. Other times are invalid input.
//
// # Errors
//
// Arguments are validated before anything is written. A rejected call
// returns an error that matches ErrInvalidInput, usually a *ValidationError
// naming the field, and changes nothing. Storage errors are wrapped with the
// operation's name ("register worker: ...") and keep their cause. A call
// after Close fails with ErrClosed; Open with WithAutoMigrate(false) fails
// with ErrNotMigrated on a database it would have had to create or upgrade.
// On SQLite no call returns SQLITE_BUSY while its context lives: writes
// wait for the lock, and the context's deadline bounds the wait.
//
// # FlowFabric databases
//
// The registry's tables are FlowFabric's (ff_worker_registry,
// ff_worker_registry_event, and the engine's ff_exec_core and ff_attempt).
// On SQLite, Open and Migrate adopt a database that FlowFabric's migrations
// made, keeping every row and adding only objects of the registry's own, and
// give a database they create the same shapes, so that the engine's
// statements and the registry's work on the same rows either way. The
// stored expiry is the engine's last_heartbeat_ms + liveness_ttl_ms, so an
// engine heartbeat moves it. The audit log's ID is the rowid of the
// engine's table, whose key includes the event's time: an event whose key
// is taken moves to the next free millisecond rather than being lost, and
// PruneEvents keeps the newest event so that IDs are never reused. A
// failed Open or Migrate leaves a SQLite file as it was.
//
// # SQLite and concurrency
//
// SQLite allows one writer at a time per database file. Left to its
// defaults it also makes concurrent writers fail instead of wait: a
// transaction that starts by reading and then writes is refused with
// SQLITE_BUSY when another connection wrote in between, and busy_timeout
// does not help, because waiting could not make its snapshot current again.
// The package avoids that in three ways:
//
//   - WAL journal mode: readers never block the writer, and the writer never
//     blocks readers. synchronous=NORMAL is durable against process crashes;
//     an OS crash or power loss may lose the last transactions, never corrupt.
//   - Every write transaction begins with BEGIN IMMEDIATE (_txlock=immediate),
//     taking the write lock before its first read, so a second writer waits
//     for it rather than failing half way. This also holds across processes
//     sharing the file.
//   - Open keeps one writer connection, which the goroutines of one process
//     take in turn, in arrival order, and a separate pool of read-only
//     connections (query_only) for listings, which run in parallel with the
//     writer.
//
// Several processes on one host may write one file. They write one at a
// time, and take turns:
//
//   - No write holds the lock for long: a large HeartbeatWorkers batch runs
//     as transactions of about 10 ms each, a sweep in batches of 1,000
//     registrations, pruning in batches of 2,000 events.
//   - A write that finds the lock taken tries again every millisecond or
//     two for as long as its context lives, so no call returns
//     SQLITE_BUSY. (SQLite's own busy handler, whose pauses grow to 100 ms
//     and would let a waiting process starve, gets a 5 ms timeout.) The
//     context's deadline or cancellation bounds the wait: the call then
//     returns the context's error, having written nothing more (a batch
//     keeps the transactions it committed). A transaction that failed with
//     SQLITE_BUSY had written nothing, and runs again whole.
//   - A process that has held the lock for a while pauses its writes for
//     2 to 3 ms before it takes the lock again, so that a waiting process
//     gets it: after each transaction of 2 ms or more while other processes
//     write, else after every 40 ms of them.
//
// Three processes sending batches of 2,000 heartbeats back to back, from
// two goroutines each, keep a fourth that heartbeats every 20 ms waiting
// about 120 ms at the 99th percentile (TestMultiProcessFairness).
//
// NewSQLite takes a *sql.DB the caller owns and uses it for reads and writes
// alike; build it with OpenSQLiteDB, or with DSN, to get the same guarantees.
//
// # Postgres and concurrency
//
// Postgres runs writers in parallel under row locks, at READ COMMITTED.
// A heartbeat, mark-dead or drain is one statement on one row, which the
// row lock makes atomic. Two things need more:
//
//   - A register reads the row and then writes it. Two first registrations
//     of one instance find no row to lock, so both would write, the later
//     silently replacing the earlier.
//   - Event IDs come from a sequence when an event is inserted, not when it
//     commits. With writers in parallel, ID 11 could commit before ID 10,
//     and a reader paging the audit log forward from 11 would never see 10.
//
// So a register first takes a transaction-scoped advisory lock on its
// key, in a statement of its own, and the losing registration then reads
// the winner's row. And an event's ID is its column's default, drawn under
// one transaction-scoped advisory lock (the audit-log lock), which the
// transaction holds from its first event until it commits: event writers,
// the engine's own statements included, commit one at a time, in ID order.
// Every writer takes its row locks first and the audit-log lock last, as
// the engine's statements do, and takes no row lock after it, so the lock
// joins no deadlock. Heartbeats without events, the hot path, take no such
// lock. A heartbeat batch locks its rows in key order before it writes
// them, so that two batches sharing workers cannot deadlock. A sweep batch
// is one statement that selects its rows FOR UPDATE SKIP LOCKED and checks
// the expiry again as it deletes, so it never waits on a row another
// transaction holds, and does not remove a worker that a heartbeat has just
// refreshed.
//
// The tables are FlowFabric's, hash-partitioned 256 ways by partition_key;
// every statement about one worker names its partition, and the registry
// computes it as the engine does.
//
// Open builds a pgx pool from the URL (pgxpool.ParseConfig's parameters,
// such as pool_max_conns, apply), refuses a database whose encoding is not
// UTF8, and sets idle_in_transaction_session_timeout to 60s unless the URL
// sets it, so that a client that dies inside a transaction cannot hold the
// audit-log lock for long. NewPostgres takes a pool the caller owns, as it
// is.
package registry
