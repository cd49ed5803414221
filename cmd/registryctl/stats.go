package main

import (
	"cmp"
	"context"
	"flag"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// JSON shape of stats; see its help.
type (
	statsJSON struct {
		AsOf           string          `json:"as_of"`
		Live           int             `json:"live"`
		Draining       int             `json:"draining"`
		ExpiredUnswept int             `json:"expired_unswept"`
		ExpiredLeases  int             `json:"expired_leases"`
		Namespaces     []namespaceJSON `json:"namespaces"`
	}
	namespaceJSON struct {
		Namespace          string     `json:"namespace"`
		Live               int        `json:"live"`
		Draining           int        `json:"draining"`
		ExpiredUnswept     int        `json:"expired_unswept"`
		ExpiredLeases      int        `json:"expired_leases"`
		OldestExpiredLease *string    `json:"oldest_expired_lease"`
		Lanes              []laneJSON `json:"lanes"`
		oldest             time.Time  // OldestExpiredLease, for the table
	}
	laneJSON struct {
		Lane     string `json:"lane"`
		Live     int    `json:"live"`
		Draining int    `json:"draining"`
	}
)

// namespaceStats are the counts of one namespace as stats gathers them.
type namespaceStats struct {
	live, draining, unswept, expiredLeases int
	oldestLease                            time.Time // zero: none
	lanes                                  map[string]*laneJSON
}

func stats(flags *flag.FlagSet) runFunc {
	namespace := flags.String("namespace", "", "only namespace `NS` (default all)")
	return func(ctx context.Context, reg *registry.Registry, out *output) error {
		now := out.now()
		byNS := map[string]*namespaceStats{}
		ns := func(name string) *namespaceStats {
			if byNS[name] == nil {
				byNS[name] = &namespaceStats{lanes: map[string]*laneJSON{}}
			}
			return byNS[name]
		}
		workers := registry.ListWorkersArgs{Namespace: *namespace, Limit: registry.MaxLimit}
		for {
			res, err := reg.ListWorkersIncludingExpired(ctx, workers)
			if err != nil {
				return err
			}
			for _, w := range res.Workers {
				s := ns(w.Namespace)
				st := status(w, now)
				if st == "expired" {
					s.unswept++
					continue
				}
				s.live++
				for _, lane := range w.Lanes {
					l := s.lanes[lane]
					if l == nil {
						l = &laneJSON{Lane: lane}
						s.lanes[lane] = l
					}
					l.Live++
					if st == "draining" {
						l.Draining++
					}
				}
				if st == "draining" {
					s.draining++
				}
			}
			if workers.After = res.Next; res.Next == nil {
				break
			}
		}
		leases := registry.ListExpiredLeasesArgs{Namespace: *namespace, AsOf: now, Limit: registry.MaxLimit}
		for {
			res, err := reg.ListExpiredLeases(ctx, leases)
			if err != nil {
				return err
			}
			for _, l := range res.Leases {
				s := ns(l.Namespace)
				s.expiredLeases++
				if s.oldestLease.IsZero() || l.ExpiresAt.Before(s.oldestLease) {
					s.oldestLease = l.ExpiresAt
				}
			}
			if leases.After = res.Next; res.Next == nil {
				break
			}
		}
		return out.stats(statsReport(byNS, now), now)
	}
}

// statsReport orders the counts by namespace and lane, and totals them.
func statsReport(byNS map[string]*namespaceStats, now time.Time) statsJSON {
	v := statsJSON{AsOf: formatTime(now), Namespaces: []namespaceJSON{}}
	for name, s := range byNS {
		n := namespaceJSON{Namespace: name, Live: s.live, Draining: s.draining,
			ExpiredUnswept: s.unswept, ExpiredLeases: s.expiredLeases, Lanes: []laneJSON{}}
		if !s.oldestLease.IsZero() {
			t := formatTime(s.oldestLease)
			n.OldestExpiredLease, n.oldest = &t, s.oldestLease
		}
		for _, l := range s.lanes {
			n.Lanes = append(n.Lanes, *l)
		}
		slices.SortFunc(n.Lanes, func(a, b laneJSON) int { return cmp.Compare(a.Lane, b.Lane) })
		v.Namespaces = append(v.Namespaces, n)
		v.Live += s.live
		v.Draining += s.draining
		v.ExpiredUnswept += s.unswept
		v.ExpiredLeases += s.expiredLeases
	}
	slices.SortFunc(v.Namespaces, func(a, b namespaceJSON) int { return cmp.Compare(a.Namespace, b.Namespace) })
	return v
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
		if !n.oldest.IsZero() {
			oldest = relative(n.oldest, now)
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
