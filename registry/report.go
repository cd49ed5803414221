package registry

import (
	"math"

	"github.com/flowfabric/workerregistry/internal/store"
)

// maxVersionBytes bounds WorkerReport.Version.
const maxVersionBytes = 128

// WorkerReport is what a worker says of itself with a registration or a
// heartbeat, for operators: how many jobs it has in flight, how many it
// can take, and the build it runs. The registry stores the last one on
// the worker's row and returns it in WorkerInfo.Report; it schedules
// nothing by it, and does not require InFlight ≤ Capacity (a worker may
// overcommit, or not know its capacity: 0).
//
// InFlight and Capacity must be from 0 to 2147483647 (int32); Version is
// at most 128 bytes of valid UTF-8 without control characters, Unicode
// format characters or line and paragraph separators, and may be empty.
type WorkerReport struct {
	InFlight int
	Capacity int
	Version  string
}

// validateReport checks a report, naming its fields under "report", and
// returns it as the store writes it: nil for a nil report.
func validateReport(r *WorkerReport) (*store.Report, error) {
	if r == nil {
		return nil, nil
	}
	if err := validateCount("report.in_flight", r.InFlight); err != nil {
		return nil, err
	}
	if err := validateCount("report.capacity", r.Capacity); err != nil {
		return nil, err
	}
	if len(r.Version) > maxVersionBytes {
		return nil, invalid("report.version", "exceeds %d bytes (got %d)", maxVersionBytes, len(r.Version))
	}
	if err := validateText("report.version", r.Version); err != nil {
		return nil, err
	}
	if err := rejectInvisible("report.version", r.Version); err != nil {
		return nil, err
	}
	return &store.Report{InFlight: int64(r.InFlight), Capacity: int64(r.Capacity), Version: r.Version}, nil
}

func validateCount(field string, n int) error {
	if n < 0 {
		return invalid(field, "must not be negative (got %d)", n)
	}
	if n > math.MaxInt32 {
		return invalid(field, "must be at most %d (got %d)", math.MaxInt32, n)
	}
	return nil
}

// setReport sets a row's report columns to rep's: all nil for a nil rep.
func setReport(row *store.WorkerRow, rep *store.Report) {
	row.ReportInFlight, row.ReportCapacity, row.ReportVersion = rep.Columns()
}

// decodeReport is a stored row's report, nil when none was ever sent.
// Counts the engine or an older writer might have left out of range are
// clamped rather than failing a page.
func decodeReport(inFlight, capacity *int64, version *string) *WorkerReport {
	if inFlight == nil && capacity == nil && version == nil {
		return nil
	}
	r := &WorkerReport{}
	if inFlight != nil {
		r.InFlight = int(min(max(*inFlight, 0), math.MaxInt32))
	}
	if capacity != nil {
		r.Capacity = int(min(max(*capacity, 0), math.MaxInt32))
	}
	if version != nil {
		r.Version = *version
	}
	return r
}
