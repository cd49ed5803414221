package main

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
)

// Example runs the whole scenario, as `go run ./examples/engine` does.
func Example() {
	if err := run(context.Background(), os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// T+0s   register W1                          registered
	// T+0s   register W2                          registered
	// T+0s   create E1                            waiting
	// T+0s   create E2                            waiting
	// T+0s   create E3                            waiting
	// T+0s   W1 claims E1                         attempt 0, epoch 1, expires T+30s
	// T+0s   W1 claims E2                         attempt 0, epoch 1, expires T+5s
	// T+0s   W2 claims E3                         attempt 0, epoch 1, expires T+30s
	// T+3s   W1 extends E1 (epoch 1)              done
	// T+6s   expired leases                       [E2 held by W1 (epoch 1)]
	// T+6s   reclaim E2 from W1 (epoch 1)         done
	// T+6s   W1 extends E2 (epoch 1)              fenced off: 0 rows
	// T+6s   W2 claims E2                         attempt 1, epoch 2, expires T+36s
	// T+7s   mark W2 dead                         marked
	// T+7s   orphaned leases                      [E3 held by W2 (epoch 1), E2 held by W2 (epoch 2)]
	// T+7s   reclaim E3 from W2 (epoch 1)         done
	// T+7s   reclaim E2 from W2 (epoch 2)         done
	// T+7s   W1 claims E3                         attempt 1, epoch 2, expires T+37s
	// T+8s   W2 extends E3 (epoch 1)              fenced off: 0 rows
	// T+8s   W2 completes E3 (epoch 1)            fenced off: 0 rows
	// T+9s   W1 completes E1 (epoch 1)            done
	// T+9s   W1 completes E3 (epoch 2)            done
	// T+9s   expired leases an hour later         []
	// T+9s   executions                           E1 completed, E2 waiting, E3 completed
	// engine scenario complete: every lease change behaved as expected
}

// TestFencedReportsDeviation: a fenced change that changed another number
// of rows than expected is an error, which main turns into exit status 1.
func TestFencedReportsDeviation(t *testing.T) {
	var out strings.Builder
	e := &engine{out: &out, now: t0}
	if err := e.fenced("W2 extends E3 (epoch 1)", rowCount(1), nil, 0); err == nil || !strings.Contains(err.Error(), "1 rows changed, want 0") {
		t.Fatalf("a stale holder's change that went through = %v, want a deviation", err)
	}
	if err := e.fenced("reclaim E2", rowCount(0), nil, 1); err == nil {
		t.Fatal("a reclaim that changed nothing passed")
	}
	if err := e.fenced("x", nil, sql.ErrConnDone, 1); err == nil {
		t.Fatal("a failed statement passed")
	}
}
