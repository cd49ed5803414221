package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/flowfabric/workerregistry/dashboard"
	"github.com/flowfabric/workerregistry/registry"
)

// serve's command joins the others from its own file.
func init() {
	commands = append(commands, command{
		name:     "serve",
		synopsis: "[-addr HOST:PORT] [-read-only] [-prefix PATH]",
		doc: `Serves the dashboard (package dashboard): the fleet, each worker, the live
event log and the lease backlog as web pages, and its JSON API, until
interrupted (Ctrl-C or SIGTERM: it stops accepting, ends the live event
streams, lets requests in flight finish, and exits 0).

It listens on 127.0.0.1:8080 unless -addr says otherwise, and prints the
URL it serves on stdout. Bound to an address other than a loopback one
without -read-only, it warns on stderr: anyone who reaches the address can
drain, resume and kill workers (cross-origin requests from browsers are
refused, but nothing asks who the caller is). -read-only refuses every
action with 403. -prefix serves everything under a path, as an engine that
mounts the dashboard does. The API under PATH/api/ answers in the shapes
that registryctl's -json prints.

-json prints {"url"} instead of the "serving URL" line.
`,
		setup: serve,
		check: checkServe,
	})
}

// shutdownTimeout bounds how long serve waits for requests in flight
// once interrupted.
const shutdownTimeout = 10 * time.Second

func serve(flags *flag.FlagSet) runFunc {
	addr := flags.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT` (port 0 picks a free one)")
	readOnly := flags.Bool("read-only", false, "refuse drain, resume and kill (403)")
	prefix := flags.String("prefix", "", "serve under `PATH`, such as /registry")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		p := strings.TrimSuffix(*prefix, "/")
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && !*readOnly {
			fmt.Fprintf(out.stderr, "registryctl serve: warning: listening on %s, which is not a loopback address, without -read-only: anyone who can reach it can drain, resume and kill workers\n", ln.Addr())
		}
		logger := slog.New(slog.NewTextHandler(out.stderr, nil))
		mux := http.NewServeMux()
		mux.Handle(p+"/", dashboard.New(reg, dashboard.Options{Prefix: p, ReadOnly: *readOnly, Logger: logger}))
		if p != "" {
			mux.Handle("GET /{$}", http.RedirectHandler(p+"/", http.StatusFound))
		}
		// Event streams never end by themselves: their requests' context
		// is cancelled at shutdown, before Shutdown waits for idle
		// connections.
		base, cancel := context.WithCancel(context.Background())
		defer cancel()
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
			BaseContext: func(net.Listener) context.Context { return base }}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		url := fmt.Sprintf("http://%s%s/", ln.Addr(), p)
		if out.json {
			err = out.writeJSON(struct {
				URL string `json:"url"`
			}{url})
		} else {
			_, err = fmt.Fprintln(out.stdout, "serving "+url)
		}
		if err != nil {
			return err
		}
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
		}
		cancel()
		stop, done := context.WithTimeout(context.Background(), shutdownTimeout)
		defer done()
		err = srv.Shutdown(stop)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		return err
	}
}

// checkServe rejects an -addr that is not HOST:PORT and a -prefix that is
// not a path.
func checkServe(flags *flag.FlagSet) error {
	if _, _, err := net.SplitHostPort(flags.Lookup("addr").Value.String()); err != nil {
		return fmt.Errorf("-addr: %v", err)
	}
	if p := flags.Lookup("prefix").Value.String(); p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "{}?# ")) {
		return fmt.Errorf("-prefix: want a path such as /registry (got %q)", p)
	}
	return nil
}
