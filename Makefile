# Everyday targets. `make check` is what CI runs (.ci/run), minus starting
# a Postgres server: set REGISTRY_TEST_POSTGRES for the Postgres half.
.PHONY: check generate lint test bench bench-postgres soak soak-faults storm screenshot

check:
	.ci/run

# sqlc v1.31.1 regenerates db/ from schema/ and queries/ (see tools/go.mod).
generate:
	go generate ./...

# gofmt, go vet and staticcheck (pinned in tools/go.mod).
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go tool -modfile=tools/go.mod staticcheck ./...

# The README's test command.
test:
	go test -race -gcflags=modernc.org/sqlite/lib=-race=false ./...

# The benchmark suite and its report: see BENCHMARKS.md.

# BENCH_COUNT is go test's -count: the report takes each figure's median.
BENCH_COUNT ?= 3

bench:
	REGISTRY_TEST_POSTGRES= go test -run='^$$' -bench=. -count=$(BENCH_COUNT) -timeout=90m ./registry/ | tee bench.txt
	go run ./scripts/benchreport -in bench.txt -md BENCHMARKS.md -svg docs/expired-lease-pages.svg

# The Postgres store's benchmarks and their report, BENCHMARKS-postgres.md:
# scripts/bench-postgres starts a server with fsync off (port
# $PG_BENCH_PORT, default 54341) and then a durable one (PG_DURABLE=1,
# $PG_BENCH_DURABLE_PORT, default 54342) with scripts/pg-test-server, runs
# the benchmarks on each (bench-postgres.txt, bench-postgres-durable.txt)
# and writes the report from both. BENCH_COUNT sets -count;
# REGISTRY_BENCH_POSTGRES_WORKERS and REGISTRY_BENCH_POSTGRES_LEASES lower
# the large data sets' sizes.
bench-postgres:
	scripts/bench-postgres

# The long soak: a million mixed calls (see registry/soak_test.go); its
# figures go into BENCHMARKS.md's soak section.
soak:
	REGISTRY_TEST_POSTGRES= REGISTRY_SOAK_CALLS=1000000 REGISTRY_SOAK_REPORT=$(CURDIR)/soak.md go test -run='^TestSoak$$' -v -timeout=60m ./registry/
	go run ./scripts/benchreport -soak soak.md -md BENCHMARKS.md
	$(MAKE) soak-faults

# The fault soak (registry/faultsoak_test.go), FAULT_SOAK_DURATION per
# store, on a Postgres cluster of its own (port FAULT_SOAK_PORT) so that it
# may restart the server; its figures go to faultsoak.md, for
# BENCHMARKS.md's "Fault soak" section.
FAULT_SOAK_DURATION ?= 2m
FAULT_SOAK_PORT ?= 54343

soak-faults:
	@dirfile=$$(mktemp) && dsn=$$(PG_TEST_DIR_FILE=$$dirfile scripts/pg-test-server start $(FAULT_SOAK_PORT)) && dir=$$(cat $$dirfile) && rm -f $$dirfile faultsoak.md && \
	REGISTRY_TEST_POSTGRES=$$dsn REGISTRY_FAULTSOAK_PG_DIR=$$dir REGISTRY_FAULTSOAK_DURATION=$(FAULT_SOAK_DURATION) REGISTRY_FAULTSOAK_REPORT=$(CURDIR)/faultsoak.md \
		go test -run='^TestFaultSoak$$' -v -timeout=60m ./registry/; rc=$$?; scripts/pg-test-server stop $$dir; cat faultsoak.md; exit $$rc

# The storm (registry/storm_test.go): STORM_WORKERS worker loops (TTL
# 30 s, or REGISTRY_STORM_TTL) in STORM_PROCESSES child processes for
# STORM_DURATION, with the registry's sweeper in the parent, on a durable
# Postgres cluster of its own (fsync on, port STORM_PORT); its figures go
# to storm.md, a row for BENCHMARKS-postgres.md. REGISTRY_STORM_FLOWFABRIC=1
# storms an adopted FlowFabric database too.
STORM_DURATION ?= 5m
STORM_WORKERS ?= 10000
STORM_PROCESSES ?= 4
STORM_PORT ?= 54344

storm:
	@dirfile=$$(mktemp) && dsn=$$(PG_DURABLE=1 PG_TEST_DIR_FILE=$$dirfile scripts/pg-test-server start $(STORM_PORT)) && dir=$$(cat $$dirfile) && rm -f $$dirfile storm.md && \
	REGISTRY_TEST_POSTGRES=$$dsn REGISTRY_STORM_DURATION=$(STORM_DURATION) REGISTRY_STORM_WORKERS=$(STORM_WORKERS) REGISTRY_STORM_PROCESSES=$(STORM_PROCESSES) REGISTRY_STORM_REPORT=$(CURDIR)/storm.md \
		go test -run='^TestStorm$$' -v -count=1 -timeout=60m ./registry/; rc=$$?; scripts/pg-test-server stop $$dir; cat storm.md 2>/dev/null; exit $$rc

# docs/dashboard.png: the dashboard's fleet page over a seeded fleet, as
# headless Chromium (Debian's chromium package) shows it; see
# dashboard/browser_test.go.
screenshot:
	REGISTRY_TEST_BROWSER_REQUIRED=1 DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png go test -count=1 -run='^TestScreenshot$$' ./dashboard/
