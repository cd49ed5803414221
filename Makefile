# The benchmark suite and its report: see BENCHMARKS.md.
.PHONY: bench test

test:
	go test -race ./...

bench:
	go test -run='^$$' -bench=. -timeout=30m ./registry/ | tee bench.txt
	go run ./scripts/benchreport -in bench.txt -md BENCHMARKS.md -svg docs/expired-lease-pages.svg
