// Package workerregistry is the module root of a worker registry for job and
// workflow engines: workers register with lanes, capabilities and a liveness
// TTL, heartbeat, are drained or marked dead, and are swept when they go
// silent; the engine lists live workers and the job leases that expired.
//
// The public API is in package [github.com/flowfabric/workerregistry/registry].
// Each store has its queries in queries/<engine> as plain SQL, compiled by
// sqlc into [github.com/flowfabric/workerregistry/db/sqlitedb] and
// [github.com/flowfabric/workerregistry/db/pgdb], and its goose migrations
// in schema/<engine>, embedded by package
// [github.com/flowfabric/workerregistry/schema]. Tests of code that uses
// the registry get fixtures from
// [github.com/flowfabric/workerregistry/registry/registrytest].
package workerregistry

// sqlc is pinned in tools/go.mod so that library users do not inherit its
// dependencies, and so that a fresh machine fetches and builds it by itself.
//go:generate go tool -modfile=tools/go.mod sqlc generate
