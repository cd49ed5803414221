// Package registry tracks the liveness of job workers and tells an engine
// which job leases have expired.
//
// # Stores
//
// A [Registry] keeps its state in SQLite (a file on one host, the default)
// or in Postgres (a server that workers on many hosts share); [Open] picks
// the store from its argument (see [ParseDSN]), creates or migrates the
// database, and owns its connections. [NewSQLite] and [NewPostgres] wrap a
// database handle the caller owns and has migrated ([Migrate]). Both
// stores give the same results for the same calls: the behaviour in this
// package is written once, above per-store SQL that sqlc compiles, and one
// test suite runs against each store.
//
// # Liveness
//
// A registration is live at time t when t < LastHeartbeat + LivenessTTL.
// Every operation uses this one definition, and a registration that is not
// live behaves exactly as if it were absent, whether or not the sweep has
// removed it yet: a heartbeat or mark-dead on it reports NotRegistered, a
// register over it reports Registered, and listings leave it out.
// [Registry.SweepExpiredWorkers] and [Registry.RunSweeper] remove such
// registrations, and prune events older than [WithEventRetention].
//
// Each call takes its time from its args struct (Now); a zero Now means the
// registry's clock ([WithClock]), read again once a write holds the locks
// it waited for, so that a call that waited for another writer does not
// judge liveness, or set an expiry, at a time already past. Times are stored as
// milliseconds since the Unix epoch, so they are truncated to the
// millisecond. A call's time (Now, AsOf, a sweep's now, PruneEvents'
// before) must lie between 1970 and the end of 9999, so that adding a TTL
// cannot overflow; a [LeaseCursor] stands for a stored expiry, so its time
// may be any that int64 milliseconds hold. Other times are invalid input.
//
// # Clocks
//
// A registration's expiry is a time on one clock, so every process that
// shares a database must read the same one. Without [WithClock]:
//
//   - On SQLite the registry reads its host's clock, which is the
//     database's: every process that shares the file runs on that host.
//   - On Postgres it reads the database server's clock: the host's clock
//     plus an offset measured when the Registry is made (a few round trips,
//     keeping the one that took least; the server's time is taken at the
//     round trip's midpoint) and again every 30 seconds until Close. Hosts
//     whose clocks disagree then agree on who is live: a worker on a host
//     seconds behind does not lapse at every heartbeat, and one on a host
//     an hour ahead that dies is swept a TTL after its last heartbeat, not
//     an hour later. Reading the clock costs no round trip. The offset is
//     known within half a round trip; a worker judges its own lapse
//     ([Worker.State]) that much early, and a sweep at the registry's
//     clock runs that much late, so neither errs towards the other. A
//     failed measurement is logged and the last offset kept (at first, the
//     host's clock).
//
// A time passed in an args struct (Now, AsOf) is used as it is, on either
// store. A [Worker] logs a warning, once, when its host's clock and the
// registry's differ by more than a tenth of its TTL: on Postgres, a host
// whose clock is off.
//
// # Errors
//
// Arguments are validated before anything is written. A rejected call
// returns an error that matches [ErrInvalidInput], usually a
// [*ValidationError] naming the field, and changes nothing; so does
// [ErrInstanceReassigned], a register of a live instance under another
// worker ID. Identifiers (namespace, worker ID, instance ID) are 1 to 255
// bytes of UTF-8 without control characters or leading or trailing space;
// a registration's identifiers, lanes and capabilities must also be free
// of format and separator characters (Unicode Cf, Zl, Zp: bidirectional
// overrides, zero-width characters, the soft hyphen, tags), which print
// as nothing or reorder what follows. Calls that look a worker up accept
// them, so that a row stored without that rule can still be reached.
// Storage errors are wrapped with the operation's name
// ("register worker: ...") and keep their cause; a stored row that cannot
// be decoded is [ErrCorruption]. A call after [Registry.Close] fails with
// [ErrClosed]; Open with [WithAutoMigrate](false) fails with
// [ErrNotMigrated] on a database it would have had to create or upgrade.
//
// # Concurrency
//
// A Registry is safe for concurrent use, and many registries, in one
// process or many, may share a database: a SQLite file on one host, a
// Postgres database across hosts. Whatever the interleaving:
//
//   - Concurrent registrations of one instance never fail with a storage
//     error: one wins, and the others report Refreshed (or
//     ErrInstanceReassigned, under another worker ID), having seen its row.
//   - A change and its event commit together, and events commit in ID
//     order, so a reader paging the audit log forward
//     ([Registry.ListWorkerEvents]) misses none.
//   - Heartbeat batches that share workers never deadlock, and a sweep
//     never removes a worker that a concurrent heartbeat kept live.
//   - A call that its context cancels either fails having written nothing
//     or succeeds with its whole effect ([Registry.HeartbeatWorkers] keeps
//     the transactions of a large batch that it committed). A call waits
//     for the locks it needs while its context lives, and no longer.
//
// # SQLite
//
// SQLite allows one writer at a time per database file, and left to its
// defaults makes concurrent writers fail with SQLITE_BUSY instead of
// waiting. The SQLite store therefore:
//
//   - runs in WAL mode, where readers and the writer never block each
//     other; synchronous=NORMAL is durable against process crashes, while
//     an OS crash or power loss may lose the last transactions, never
//     corrupt the file;
//   - begins every write transaction with BEGIN IMMEDIATE, so that a
//     writer waits for the lock before its first read instead of failing
//     half way, across processes too;
//   - keeps one writer connection, which a process's goroutines take in
//     turn, and a pool of read-only connections for listings, which run
//     in parallel with it;
//   - retries SQLITE_BUSY itself, so that no call returns it while its
//     context lives, and keeps each write short (large heartbeat batches,
//     sweeps and prunes are split; a write that waits behind a batch of a
//     sweep goes before its next, and while a sweep writes, the WAL is
//     checkpointed off the writer) and the processes that share a file
//     taking turns. Three processes sending batches
//     of 2,000 heartbeats back to back keep a fourth that heartbeats every
//     20 ms waiting about 120 ms at the 99th percentile
//     (TestMultiProcessFairness).
//
// [NewSQLite] uses the *sql.DB it is given for reads and writes alike;
// build it with [OpenSQLiteDB], or from [SQLiteDSN], to get the same
// guarantees.
//
// # Postgres
//
// The Postgres store runs writers in parallel under row locks, at READ
// COMMITTED, and takes the few locks more that the guarantees above need
// (an advisory lock orders audit events). Open builds a pgx pool from the URL
// (pgxpool.ParseConfig's parameters, such as pool_max_conns, apply),
// refuses a database whose encoding is not UTF8, and sets
// idle_in_transaction_session_timeout to 60s unless the URL sets it, so
// that a client that dies inside a transaction cannot hold locks for
// long. [NewPostgres] takes a pool the caller owns, as it is.
//
// # FlowFabric databases
//
// The registry's tables are FlowFabric's (ff_worker_registry,
// ff_worker_registry_event, and the engine's ff_exec_core and ff_attempt).
// On both stores, Open and Migrate adopt a database that FlowFabric's
// migrations made, keeping every row and adding only objects of the
// registry's own, and give a database they create the same shapes, so that
// the engine's statements and the registry's work on the same rows either
// way. The stored expiry is the engine's last_heartbeat_ms +
// liveness_ttl_ms, so an engine heartbeat moves it. The audit log's key
// includes the event's time: an event whose key is taken moves to the next
// free millisecond rather than being lost. On SQLite an event's ID is the
// rowid of the engine's table, and [Registry.PruneEvents] keeps the newest
// event so that IDs are never reused; on Postgres it is the event_id
// column's default, which numbers the engine's events too. On Postgres the
// tables are hash-partitioned 256 ways by partition_key, which the registry
// computes from the instance ID as the engine does. A failed Open or
// Migrate leaves a SQLite file as it was, and a Postgres database as it was
// before the migration that failed.
package registry
