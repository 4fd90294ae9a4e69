package clusterctl

import (
	"fmt"
	"strings"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// VersionReport is `version`'s output: this program's version and the one
// each member publishes in its member key.
type VersionReport struct {
	Program string `json:"program"`
	Version string `json:"version"`
	// Members maps each member to the pg-ha version in its member key
	// ("" when it publishes none).
	Members map[string]string `json:"members"`
	names   []string
}

// Versions builds the report for program at version from cl. It is pure.
func Versions(program, version string, cl *dcs.Cluster) VersionReport {
	v := VersionReport{Program: program, Version: version, Members: map[string]string{}}
	for _, m := range cl.Members {
		v.Members[m.Name] = m.Data.Version
		v.names = append(v.names, m.Name)
	}
	return v
}

// String is the text form: "pg-failover 0.1.0", then "node1: pg-ha 0.1.0"
// for each member, sorted by name.
func (v VersionReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", v.Program, v.Version)
	for _, n := range v.names {
		ver := v.Members[n]
		if ver == "" {
			ver = "unknown"
		}
		fmt.Fprintf(&b, "%s: pg-ha %s\n", n, ver)
	}
	return b.String()
}
