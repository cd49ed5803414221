package registry

import (
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// ExecutionID identifies an execution: the engine's partition and the
// execution's UUID. Its text form is "{fp:N}:uuid", N in decimal.
type ExecutionID struct {
	Partition uint16
	UUID      uuid.UUID
}

const executionIDPrefix = "{fp:"

// ParseExecutionID parses the text form "{fp:N}:uuid": N a decimal from 0 to
// 65535 without leading zeros, and the UUID in its 36-character hyphenated
// form (either case). Anything else is an error matching ErrInvalidInput.
func ParseExecutionID(s string) (ExecutionID, error) {
	bad := func(reason string) (ExecutionID, error) {
		return ExecutionID{}, invalid("execution_id", "%s (got %q)", reason, truncate(s, 80))
	}
	rest, ok := strings.CutPrefix(s, executionIDPrefix)
	if !ok {
		return bad(`must start with "{fp:"`)
	}
	partition, u, ok := strings.Cut(rest, "}:")
	if !ok {
		return bad(`must have "}:" after the partition`)
	}
	if partition == "" || len(partition) > 5 || (len(partition) > 1 && partition[0] == '0') ||
		strings.IndexFunc(partition, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return bad("partition must be a decimal without leading zeros")
	}
	n, err := strconv.ParseUint(partition, 10, 16)
	if err != nil {
		return bad("partition must be at most 65535")
	}
	// uuid.Parse also takes braces, URNs and unhyphenated forms; only the
	// canonical one round-trips.
	if len(u) != 36 {
		return bad("UUID must be 36 characters, hyphenated")
	}
	id, err := uuid.Parse(u)
	if err != nil {
		return bad("UUID is malformed")
	}
	return ExecutionID{Partition: uint16(n), UUID: id}, nil
}

// String returns the text form, "{fp:N}:uuid" with a lowercase UUID.
func (id ExecutionID) String() string {
	return executionIDPrefix + strconv.FormatUint(uint64(id.Partition), 10) + "}:" + id.UUID.String()
}

// MarshalText implements encoding.TextMarshaler with the text form.
func (id ExecutionID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseExecutionID.
func (id *ExecutionID) UnmarshalText(b []byte) error {
	parsed, err := ParseExecutionID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// leaseID derives a lease's ID from its execution, attempt and epoch, as
// the engine does, so that every backend reports the same ID: the UUID with
// bytes 8..12 XORed with the big-endian attempt index and bytes 0..8 with
// the big-endian epoch.
func leaseID(execution uuid.UUID, attemptIndex uint32, epoch uint64) uuid.UUID {
	id := execution
	for i := range 4 {
		id[8+i] ^= byte(attemptIndex >> (24 - 8*i))
	}
	for i := range 8 {
		id[i] ^= byte(epoch >> (56 - 8*i))
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
