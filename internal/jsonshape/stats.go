package jsonshape

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/flowfabric/workerregistry/registry"
)

// The shape of the registry's counts (registryctl stats -json, the
// dashboard's /api/stats).
type (
	// Stats are the counts over every namespace (or one), with each
	// namespace's.
	Stats struct {
		AsOf           string      `json:"as_of"`
		Live           int         `json:"live"`
		Draining       int         `json:"draining"`
		ExpiredUnswept int         `json:"expired_unswept"`
		ExpiredLeases  int         `json:"expired_leases"`
		Namespaces     []Namespace `json:"namespaces"`
	}
	// Namespace are one namespace's counts. OldestExpiredLease is null
	// when it has no expired lease.
	Namespace struct {
		Namespace          string    `json:"namespace"`
		Live               int       `json:"live"`
		Draining           int       `json:"draining"`
		ExpiredUnswept     int       `json:"expired_unswept"`
		ExpiredLeases      int       `json:"expired_leases"`
		OldestExpiredLease *string   `json:"oldest_expired_lease"`
		Lanes              []Lane    `json:"lanes"`
		Oldest             time.Time `json:"-"` // OldestExpiredLease as a time; zero for none
		// Versions are, for each worker ID with live workers that
		// reported a version, the distinct versions they reported, sorted:
		// more than one is a version mismatch within the worker ID.
		Versions map[string][]string `json:"-"`
	}
	// Lane are the live and draining workers serving one lane.
	Lane struct {
		Lane     string `json:"lane"`
		Live     int    `json:"live"`
		Draining int    `json:"draining"`
	}
)

// namespaceStats are the counts of one namespace as a collector gathers
// them.
type namespaceStats struct {
	live, draining, unswept, expiredLeases int
	oldestLease                            time.Time // zero: none
	lanes                                  map[string]*Lane
	versions                               map[string][]string // worker ID → distinct reported versions
}

// CollectStats counts what reg holds at now, in namespace or ("") in
// every namespace: live and draining workers per namespace and lane, the
// expired registrations not swept yet, and the expired-lease backlog. It
// reads every registration and every expired lease. A lease whose
// execution has no namespace counts under the namespace "".
func CollectStats(ctx context.Context, reg *registry.Registry, namespace string, now time.Time) (Stats, error) {
	c := collector{}
	if err := c.workers(ctx, reg, namespace, now, 0); err != nil {
		return Stats{}, err
	}
	if err := c.leases(ctx, reg, namespace, now); err != nil {
		return Stats{}, err
	}
	return c.report(now), nil
}

// CollectWorkerStats is CollectStats without the expired-lease backlog
// (its counts are 0), over at most max registrations (0: all of them);
// truncated says that max stopped it. A page that shows the fleet's
// shape reads no leases, and stays bounded on a huge fleet.
func CollectWorkerStats(ctx context.Context, reg *registry.Registry, namespace string, now time.Time, max int) (_ Stats, truncated bool, _ error) {
	c := collector{}
	if err := c.workers(ctx, reg, namespace, now, max); err != nil {
		return Stats{}, false, err
	}
	return c.report(now), c.truncated, nil
}

// collector gathers the counts of each namespace.
type collector struct {
	byNS      map[string]*namespaceStats
	truncated bool
}

func (c *collector) ns(name string) *namespaceStats {
	if c.byNS == nil {
		c.byNS = map[string]*namespaceStats{}
	}
	if c.byNS[name] == nil {
		c.byNS[name] = &namespaceStats{lanes: map[string]*Lane{}}
	}
	return c.byNS[name]
}

func (c *collector) workers(ctx context.Context, reg *registry.Registry, namespace string, now time.Time, max int) error {
	workers := registry.ListWorkersArgs{Namespace: namespace, Limit: registry.MaxLimit}
	seen := 0
	for {
		if max > 0 {
			workers.Limit = min(registry.MaxLimit, max-seen)
		}
		res, err := reg.ListWorkersIncludingExpired(ctx, workers)
		if err != nil {
			return err
		}
		seen += len(res.Workers)
		for _, w := range res.Workers {
			s := c.ns(w.Namespace)
			st := Status(w, now)
			if st == "expired" {
				s.unswept++
				continue
			}
			s.live++
			for _, lane := range w.Lanes {
				l := s.lanes[lane]
				if l == nil {
					l = &Lane{Lane: lane}
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
			if w.Report != nil && w.Report.Version != "" {
				if s.versions == nil {
					s.versions = map[string][]string{}
				}
				if vs := s.versions[w.WorkerID]; !slices.Contains(vs, w.Report.Version) {
					s.versions[w.WorkerID] = append(vs, w.Report.Version)
				}
			}
		}
		if workers.After = res.Next; res.Next == nil {
			return nil
		}
		if max > 0 && seen >= max {
			c.truncated = true
			return nil
		}
	}
}

func (c *collector) leases(ctx context.Context, reg *registry.Registry, namespace string, now time.Time) error {
	leases := registry.ListExpiredLeasesArgs{Namespace: namespace, AsOf: now, Limit: registry.MaxLimit}
	for {
		res, err := reg.ListExpiredLeases(ctx, leases)
		if err != nil {
			return err
		}
		for _, l := range res.Leases {
			s := c.ns(l.Namespace)
			s.expiredLeases++
			if s.oldestLease.IsZero() || l.ExpiresAt.Before(s.oldestLease) {
				s.oldestLease = l.ExpiresAt
			}
		}
		if leases.After = res.Next; res.Next == nil {
			return nil
		}
	}
}

// report orders the counts by namespace and lane, and totals them.
func (c *collector) report(now time.Time) Stats {
	v := Stats{AsOf: FormatTime(now), Namespaces: []Namespace{}}
	for name, s := range c.byNS {
		n := Namespace{Namespace: name, Live: s.live, Draining: s.draining,
			ExpiredUnswept: s.unswept, ExpiredLeases: s.expiredLeases, Lanes: []Lane{}}
		if !s.oldestLease.IsZero() {
			t := FormatTime(s.oldestLease)
			n.OldestExpiredLease, n.Oldest = &t, s.oldestLease
		}
		for _, l := range s.lanes {
			n.Lanes = append(n.Lanes, *l)
		}
		for _, vs := range s.versions {
			slices.Sort(vs)
		}
		n.Versions = s.versions
		slices.SortFunc(n.Lanes, func(a, b Lane) int { return cmp.Compare(a.Lane, b.Lane) })
		v.Namespaces = append(v.Namespaces, n)
		v.Live += s.live
		v.Draining += s.draining
		v.ExpiredUnswept += s.unswept
		v.ExpiredLeases += s.expiredLeases
	}
	slices.SortFunc(v.Namespaces, func(a, b Namespace) int { return cmp.Compare(a.Namespace, b.Namespace) })
	return v
}
