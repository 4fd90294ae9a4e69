package health

import (
	"net/url"
	"strings"
)

// Route is what a request path asks for.
type Route uint8

// Routes, named after the path that selects them.
const (
	RouteUnknown        Route = iota // any other path: Patroni answers 503 with the status
	RoutePrimary                     // /, /primary, /master, /read-write
	RouteLeader                      // /leader
	RouteStandbyLeader               // /standby-leader, /standby_leader
	RouteReplica                     // /replica
	RouteReadOnly                    // /read-only
	RouteReadOnlySync                // /read-only-sync, /read-only-synchronous
	RouteSync                        // /sync, /synchronous
	RouteAsync                       // /async, /asynchronous
	RouteQuorum                      // /quorum
	RouteReadOnlyQuorum              // /read-only-quorum
	RouteHealth                      // /health
	RouteLiveness                    // /liveness
	RouteReadiness                   // /readiness
	RoutePatroni                     // /patroni
	RouteCluster                     // /cluster
	RouteHistory                     // /history
	RouteConfig                      // /config
	RouteMetrics                     // /metrics
	RouteFailsafe                    // /failsafe
)

var routeNames = [...]string{
	RouteUnknown: "unknown", RoutePrimary: "primary", RouteLeader: "leader", RouteStandbyLeader: "standby-leader",
	RouteReplica: "replica", RouteReadOnly: "read-only", RouteReadOnlySync: "read-only-sync", RouteSync: "sync",
	RouteAsync: "async", RouteQuorum: "quorum", RouteReadOnlyQuorum: "read-only-quorum", RouteHealth: "health", RouteLiveness: "liveness", RouteReadiness: "readiness",
	RoutePatroni: "patroni", RouteCluster: "cluster", RouteHistory: "history", RouteConfig: "config",
	RouteMetrics: "metrics", RouteFailsafe: "failsafe",
}

// String names the route ("primary", "replica", …).
func (r Route) String() string {
	if int(r) < len(routeNames) {
		return routeNames[r]
	}
	return "invalid"
}

// Request is a parsed health request: the route and the query parameters
// Patroni honours.
type Request struct {
	Route Route
	// MaxLag is ?lag= in bytes; HasLag is false when absent or unparsable
	// (Patroni then applies no limit).
	MaxLag int64
	HasLag bool
	// Tags are the ?tag_<key>=<value> filters, first value of each key.
	Tags []TagFilter
	// ReplicationState is ?replication_state=, "" when absent.
	ReplicationState string
}

// TagFilter is one ?tag_<key>=<value> parameter.
type TagFilter struct{ Key, Value string }

// maxTagFilters bounds the work a single request can cause; the header
// size limit bounds it anyway, this keeps it small.
const maxTagFilters = 64

// ParseRequest routes path the way Patroni 4 does and reads the query
// parameters. It never fails: malformed parameters are ignored as Patroni's
// parse_qs ignores them, and an unparsable lag means no limit. It does no
// I/O.
//
// Routing: the first path segment selects the named endpoints (liveness,
// readiness, patroni, cluster, history, config, metrics, failsafe; "/cluster/x" is
// /cluster). Any other path is a health check matched by substring, in
// Patroni's order: "standby_leader" or "standby-leader", then "leader", then
// "master", "primary" or "read-write", then "replica", then "read-only"
// (without "sync" or "quorum"), then "health"; then exactly /sync,
// /synchronous, /async, /asynchronous, /read-only-sync,
// /read-only-synchronous, /quorum, /read-only-quorum. "/" is /primary.
// Anything else is RouteUnknown, which Patroni answers 503.
func ParseRequest(path, rawQuery string) Request {
	r := Request{Route: route(path)}
	if rawQuery == "" {
		return r
	}
	seen := map[string]bool{}
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil || val == "" || seen[key] {
			continue // parse_qs drops blank values; the first value counts
		}
		seen[key] = true
		switch {
		case key == "lag":
			r.MaxLag, r.HasLag = ParseLag(val)
		case key == "replication_state":
			r.ReplicationState = val
		case strings.HasPrefix(key, "tag_") && len(r.Tags) < maxTagFilters:
			r.Tags = append(r.Tags, TagFilter{Key: key[len("tag_"):], Value: val})
		}
	}
	return r
}

func route(path string) Route {
	if path == "/" {
		return RoutePrimary
	}
	first := strings.TrimLeft(path, "/")
	if i := strings.IndexByte(first, '/'); i >= 0 {
		first = first[:i]
	}
	switch first {
	case "liveness":
		return RouteLiveness
	case "readiness":
		return RouteReadiness
	case "patroni":
		return RoutePatroni
	case "cluster":
		return RouteCluster
	case "history":
		return RouteHistory
	case "config":
		return RouteConfig
	case "metrics":
		return RouteMetrics
	case "failsafe":
		return RouteFailsafe
	}
	has := func(s string) bool { return strings.Contains(path, s) }
	switch {
	case has("standby_leader") || has("standby-leader"):
		return RouteStandbyLeader
	case has("leader"):
		return RouteLeader
	case has("master") || has("primary") || has("read-write"):
		return RoutePrimary
	case has("replica"):
		return RouteReplica
	case has("read-only") && !has("sync") && !has("quorum"):
		return RouteReadOnly
	case has("health"):
		return RouteHealth
	}
	switch path {
	case "/sync", "/synchronous":
		return RouteSync
	case "/async", "/asynchronous":
		return RouteAsync
	case "/read-only-sync", "/read-only-synchronous":
		return RouteReadOnlySync
	case "/quorum":
		return RouteQuorum
	case "/read-only-quorum":
		return RouteReadOnlyQuorum
	}
	return RouteUnknown
}
