package registry_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/flowfabric/workerregistry/registry"
)

// invisibles are characters that print as nothing, or rearrange what
// follows them: Unicode format characters (Cf) and the line and paragraph
// separators (Zl, Zp).
var invisibles = map[string]rune{
	"right-to-left override":   '\u202e',
	"left-to-right isolate":    '\u2066',
	"pop directional isolate":  '\u2069',
	"zero-width space":         '\u200b',
	"zero-width joiner":        '\u200d',
	"byte-order mark":          '\ufeff',
	"soft hyphen":              '\u00ad',
	"tag latin small letter a": '\U000E0061',
	"line separator":           '\u2028',
	"paragraph separator":      '\u2029',
}

func openInvisibleTest(t *testing.T) (*registry.Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.db")
	reg, err := registry.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg, path
}

var invisibleNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func invisibleArgs() registry.RegisterWorkerArgs {
	return registry.RegisterWorkerArgs{
		Namespace: "ns", WorkerID: "pool", WorkerInstanceID: "w-00001",
		Lanes: []string{"default"}, Capabilities: []string{"cuda"},
		LivenessTTL: time.Minute, Now: invisibleNow,
	}
}

// TestRegisterRejectsInvisibleCharacters: an identifier or token holding a
// format or separator character is rejected with the field named, as a
// control character is, and nothing is written.
func TestRegisterRejectsInvisibleCharacters(t *testing.T) {
	reg, path := openInvisibleTest(t)
	ctx := context.Background()
	fields := []struct {
		field string
		set   func(a *registry.RegisterWorkerArgs, s string)
	}{
		{"namespace", func(a *registry.RegisterWorkerArgs, s string) { a.Namespace = s }},
		{"worker_id", func(a *registry.RegisterWorkerArgs, s string) { a.WorkerID = s }},
		{"worker_instance_id", func(a *registry.RegisterWorkerArgs, s string) { a.WorkerInstanceID = s }},
		{"lanes[1]", func(a *registry.RegisterWorkerArgs, s string) { a.Lanes = []string{"default", s} }},
		{"capabilities[0]", func(a *registry.RegisterWorkerArgs, s string) { a.Capabilities = []string{s} }},
	}
	for name, r := range invisibles {
		for _, f := range fields {
			t.Run(name+"/"+f.field, func(t *testing.T) {
				args := invisibleArgs()
				f.set(&args, "w-0000"+string(r)+"1")
				_, err := reg.RegisterWorker(ctx, args)
				var ve *registry.ValidationError
				if !errors.As(err, &ve) || !errors.Is(err, registry.ErrInvalidInput) {
					t.Fatalf("register with %U in %s: err %v, want a *ValidationError", r, f.field, err)
				}
				if ve.Field != f.field {
					t.Errorf("field %q, want %q", ve.Field, f.field)
				}
				if want := fmt.Sprintf("(found %U)", r); !strings.Contains(ve.Reason, want) {
					t.Errorf("reason %q does not name the character %s", ve.Reason, want)
				}
			})
		}
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ff_worker_registry`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d registrations written by rejected calls", n)
	}
}

// TestRegisterAcceptsOrdinaryNonASCII: letters of any script, and visible
// symbols, stay valid in identifiers and tokens.
func TestRegisterAcceptsOrdinaryNonASCII(t *testing.T) {
	reg, _ := openInvisibleTest(t)
	ctx := context.Background()
	args := invisibleArgs()
	args.Namespace, args.WorkerID, args.WorkerInstanceID = "prod-é", "日本-pool", "wörker-日本-1"
	args.Lanes, args.Capabilities = []string{"défaut", "レーン"}, []string{"Ω"}
	if _, err := reg.RegisterWorker(ctx, args); err != nil {
		t.Fatal(err)
	}
	info, ok, err := reg.GetWorker(ctx, registry.GetWorkerArgs{Namespace: args.Namespace, WorkerInstanceID: args.WorkerInstanceID, Now: invisibleNow})
	if err != nil || !ok || info.WorkerID != args.WorkerID {
		t.Fatalf("GetWorker: %+v %v %v", info, ok, err)
	}
}

// TestLookupsStillNameInvisibleRows: a registration stored before the rule
// (or by the engine) with an invisible character stays addressable, so an
// operator can still drain or remove it.
func TestLookupsStillNameInvisibleRows(t *testing.T) {
	reg, path := openInvisibleTest(t)
	ctx := context.Background()
	if _, err := reg.RegisterWorker(ctx, invisibleArgs()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	odd := "w-00001\u200b"
	if _, err := db.Exec(`UPDATE ff_worker_registry SET worker_instance_id = ?`, odd); err != nil {
		t.Fatal(err)
	}
	out, err := reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: odd, Reason: "cleanup", Now: invisibleNow})
	if err != nil || out != registry.Marked {
		t.Fatalf("MarkWorkerDead of a stored invisible ID: %v %v, want Marked", out, err)
	}
}

// TestReasonKeepsFormatCharacters: a reason is free text; an emoji
// sequence joined with U+200D is a valid reason.
func TestReasonKeepsFormatCharacters(t *testing.T) {
	reg, _ := openInvisibleTest(t)
	ctx := context.Background()
	if _, err := reg.RegisterWorker(ctx, invisibleArgs()); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MarkWorkerDead(ctx, registry.MarkWorkerDeadArgs{Namespace: "ns", WorkerInstanceID: "w-00001", Reason: "on fire \U0001F9D1\u200d\U0001F692", Now: invisibleNow}); err != nil {
		t.Fatal(err)
	}
}
