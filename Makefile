# The benchmark suite and its report: see BENCHMARKS.md.
.PHONY: bench bench-postgres test soak

test:
	go test -race ./...

bench:
	REGISTRY_TEST_POSTGRES= go test -run='^$$' -bench=. -timeout=30m ./registry/ | tee bench.txt
	go run ./scripts/benchreport -in bench.txt -md BENCHMARKS.md -svg docs/expired-lease-pages.svg

# The Postgres store's benchmarks, on the database in $REGISTRY_TEST_POSTGRES
# (scripts/pg-test-server start prints one; its default has fsync off, so
# set PG_DURABLE=1 for numbers with durable commits). Each benchmark builds
# its data in a schema of its own. REGISTRY_BENCH_POSTGRES_WORKERS and
# REGISTRY_BENCH_POSTGRES_LEASES lower the large data sets' sizes.
bench-postgres:
	@test -n "$$REGISTRY_TEST_POSTGRES" || { echo "bench-postgres: set REGISTRY_TEST_POSTGRES (see scripts/pg-test-server)" >&2; exit 1; }
	go test -run='^$$' -bench=Postgres -timeout=30m ./registry/ | tee bench-postgres.txt

# The long soak: a million mixed calls (see registry/soak_test.go); its
# figures go into BENCHMARKS.md's soak section.
soak:
	REGISTRY_TEST_POSTGRES= REGISTRY_SOAK_CALLS=1000000 REGISTRY_SOAK_REPORT=$(CURDIR)/soak.md go test -run='^TestSoak$$' -v -timeout=60m ./registry/
	go run ./scripts/benchreport -soak soak.md -md BENCHMARKS.md
