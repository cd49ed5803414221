package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowfabric/workerregistry/internal/store/sqlitestore"
)

// ErrInvalidInput is matched by every error that rejects a call's arguments.
// A call rejected with it has written nothing.
var ErrInvalidInput = errors.New("invalid input")

// ErrInstanceReassigned reports a register of a worker instance that is live
// under another worker ID. It matches ErrInvalidInput too.
var ErrInstanceReassigned = fmt.Errorf("worker instance is live under another worker ID: %w", ErrInvalidInput)

// ErrCorruption reports a stored row that cannot be decoded, such as a
// registration without lanes. It means the database was written by something
// other than this library.
var ErrCorruption = errors.New("corrupt registry row")

// reassignedError is the register refused with ErrInstanceReassigned, with
// its particulars, in one message.
type reassignedError struct{ instance, liveWorker, worker string }

func (e *reassignedError) Error() string {
	return fmt.Sprintf("worker instance %q is live under worker ID %q, not %q", e.instance, e.liveWorker, e.worker)
}

// Is matches ErrInstanceReassigned and ErrInvalidInput.
func (e *reassignedError) Is(target error) bool {
	return target == ErrInstanceReassigned || target == ErrInvalidInput
}

// ErrClosed is matched by the error of every call on a Registry after its
// Close, or on a Registry that Open, NewSQLite or NewPostgres did not make.
var ErrClosed = errors.New("registry is closed")

// ErrReadOnly is matched by the error of every write to a SQLite file that
// the process cannot write (the file, or its directory, is not writable by
// its user, or is on a read-only mount). Open with WithAutoMigrate(false)
// opens such a file for reading alone: reads work, and leave the file and
// its directory as they were (no -wal, -shm or -journal file is created);
// writes fail with ErrReadOnly. Open without it fails with ErrReadOnly.
var ErrReadOnly = sqlitestore.ErrReadOnly

// ErrNotMigrated reports, under WithAutoMigrate(false), a database that
// holds no registry or one at an older schema version. Nothing was changed.
var ErrNotMigrated = errors.New("database not migrated")

// ValidationError names the argument that was rejected and why. It matches
// ErrInvalidInput with errors.Is.
type ValidationError struct {
	Field  string // argument name, such as "namespace" or "lanes[2]"
	Reason string // what is wrong with it
}

// Error returns "field: reason".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is reports whether target is ErrInvalidInput.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruption, fmt.Sprintf(format, args...))
}

// opError wraps an operation's error with its name. When the context has
// ended it names that too: database/sql then reports only sql.ErrTxDone,
// or the driver "interrupted", which hide why the call failed.
func opError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%s: %w (%w)", op, ctxErr, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
