package main

import (
	"bufio"
	"context"
	"database/sql"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// TestServeAnswersAndStopsOnSIGTERM runs registryctl serve, reads the
// dashboard's API over HTTP with an event stream open, and sends SIGTERM:
// the process ends the stream and exits 0.
func TestServeAnswersAndStopsOnSIGTERM(t *testing.T) {
	eachStore(t, func(t *testing.T, s store) {
		path := newDB(t, s, func(reg *registry.Registry, _ *sql.DB) {
			if _, err := reg.RegisterWorker(context.Background(), registry.RegisterWorkerArgs{Namespace: "ns", WorkerID: "pool",
				WorkerInstanceID: "w<1>", Lanes: []string{"default"}, LivenessTTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		})
		f := startFollower(t, path, "serve", "-addr", "127.0.0.1:0", "-prefix", "/registry")
		line := f.waitFor(t, "the URL", func(l string) bool { return strings.HasPrefix(l, "serving http://") })
		base := strings.TrimSuffix(strings.TrimPrefix(line, "serving "), "/")
		if !strings.HasSuffix(base, "/registry") {
			t.Fatalf("serving %q", line)
		}
		res, err := http.Get(base + "/api/workers/ns/w%3C1%3E")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), `"worker_instance_id": "w\u003c1\u003e"`) {
			t.Fatalf("GET worker: %d %s", res.StatusCode, body)
		}
		stream, err := http.Get(base + "/api/events/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Body.Close()
		if l, _ := bufio.NewReader(stream.Body).ReadString('\n'); !strings.HasPrefix(l, "retry:") {
			t.Fatalf("stream: %q", l)
		}
		start := time.Now()
		if code := f.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("after SIGTERM: exit %d, stderr %q", code, f.stderr.String())
		}
		if d := time.Since(start); d > shutdownTimeout/2 {
			t.Fatalf("shutdown took %v: the open stream held it", d)
		}
		if strings.Contains(f.stderr.String(), "warning") {
			t.Fatalf("a loopback address warned: %q", f.stderr.String())
		}
	})
}

func TestServeWarnsOffLoopbackWithoutReadOnly(t *testing.T) {
	path := newDB(t, sqliteStore, func(*registry.Registry, *sql.DB) {})
	for _, ro := range []bool{false, true} {
		args := []string{"serve", "-addr", "0.0.0.0:0"}
		if ro {
			args = append(args, "-read-only")
		}
		f := startFollower(t, path, args...)
		f.waitFor(t, "the URL", func(l string) bool { return strings.HasPrefix(l, "serving http://") })
		if code := f.stop(t, syscall.SIGINT); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if warned := strings.Contains(f.stderr.String(), "not a loopback address"); warned == ro {
			t.Fatalf("-read-only %v: stderr %q", ro, f.stderr.String())
		}
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	path := newDB(t, sqliteStore, func(*registry.Registry, *sql.DB) {})
	wantError(t, ctl(t, path, 2, "serve", "-addr", "8080"), 2, "-addr")
	wantError(t, ctl(t, path, 2, "serve", "-prefix", "registry"), 2, "-prefix")
}
