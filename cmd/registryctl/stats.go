package main

import (
	"context"
	"flag"
	"io"
	"strconv"
	"time"

	"github.com/flowfabric/workerregistry/internal/jsonshape"
	"github.com/flowfabric/workerregistry/registry"
)

// JSON shape of stats, shared with the dashboard; see its help.
type (
	statsJSON     = jsonshape.Stats
	namespaceJSON = jsonshape.Namespace
	laneJSON      = jsonshape.Lane
)

func stats(flags *flag.FlagSet) runFunc {
	namespace := flags.String("namespace", "", "only namespace `NS` (default all)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		now := out.now()
		v, err := jsonshape.CollectStats(ctx, reg, *namespace, now)
		if err != nil {
			return err
		}
		return out.stats(v, now)
	}
}

// The titles of stats' two tables, each on a line of its own above the
// table's header.
const (
	statsLanesTitle      = "Live workers per namespace and lane:"
	statsNamespacesTitle = "Per namespace: workers, registrations not swept yet, expired-lease backlog:"
)

// stats prints two titled tables: workers per namespace and lane, then
// each namespace's totals, unswept registrations and expired-lease backlog.
func (o *output) stats(v statsJSON, now time.Time) error {
	if o.json {
		return o.writeJSON(v)
	}
	var lanes, namespaces [][]string
	for _, n := range v.Namespaces {
		for _, l := range n.Lanes {
			lanes = append(lanes, []string{n.Namespace, l.Lane, strconv.Itoa(l.Live), strconv.Itoa(l.Draining)})
		}
		oldest := ""
		if !n.Oldest.IsZero() {
			oldest = relative(n.Oldest, now)
		}
		namespaces = append(namespaces, []string{n.Namespace, strconv.Itoa(n.Live), strconv.Itoa(n.Draining),
			strconv.Itoa(n.ExpiredUnswept), strconv.Itoa(n.ExpiredLeases), oldest})
	}
	_, err := io.WriteString(o.stdout, statsLanesTitle+"\n")
	if err == nil {
		err = newTable(o.stdout, column{name: "NAMESPACE", max: 32}, column{name: "LANE", max: 32},
			column{name: "LIVE"}, column{name: "DRAINING"}).write(lanes)
	}
	if err == nil {
		_, err = io.WriteString(o.stdout, "\n"+statsNamespacesTitle+"\n")
	}
	if err == nil {
		err = newTable(o.stdout, column{name: "NAMESPACE", max: 32}, column{name: "LIVE"}, column{name: "DRAINING"},
			column{name: "UNSWEPT"}, column{name: "EXPIRED LEASES"}, column{name: "OLDEST LEASE EXPIRY"}).write(namespaces)
	}
	return err
}
