package config

import (
	"fmt"
	"strconv"
)

// OwnConnections is how many connections pg-ha's programs keep open on
// their node's PostgreSQL: pg-lockd, pg-supervise and pg-healthd each hold
// one across loops, so that an application that takes every other slot
// cannot stop them from observing the server. Each reconnects, once per
// loop, only after its connection failed.
const OwnConnections = 3

// Defaults of the PostgreSQL settings connectionWarnings reads.
const (
	defaultMaxConnections      = 100
	defaultSuperuserReserved   = 3
	superuserReservedParameter = "superuser_reserved_connections"
)

// connectionWarnings warns when superuser_reserved_connections (resolved
// like every postgresql parameter: bootstrap.dcs, then the local section)
// cannot cover pg-ha's own connections: then an application that fills
// max_connections can keep pg-ha's programs from connecting again after a
// restart of PostgreSQL.
func (c *Config) connectionWarnings() []string {
	params := c.Dynamic().Parameters
	key := "postgresql.parameters." + superuserReservedParameter
	reserved, ok, err := intParameter(params, superuserReservedParameter, defaultSuperuserReserved)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v; set it to a whole number of at least %d", key, err, OwnConnections)}
	}
	var warns []string
	if reserved < OwnConnections {
		src := "its default"
		if ok {
			src = "set"
		}
		warns = append(warns, fmt.Sprintf("%s: %d (%s) cannot cover pg-ha's own %d connections (pg-lockd, pg-supervise "+
			"and pg-healthd keep one each); an application that takes every other slot can lock them out: set it to at "+
			"least %d (reserved slots keep out non-superusers only: do not log applications in as a superuser)",
			key, reserved, src, OwnConnections, OwnConnections))
	}
	maxConns, _, err := intParameter(params, "max_connections", defaultMaxConnections)
	if err != nil {
		warns = append(warns, fmt.Sprintf("postgresql.parameters.max_connections: %v; set it to a whole number", err))
	} else if maxConns <= reserved {
		warns = append(warns, fmt.Sprintf("postgresql.parameters.max_connections: %d is not above %s (%d): PostgreSQL "+
			"will not start; raise max_connections", maxConns, superuserReservedParameter, reserved))
	}
	return warns
}

// intParameter reads PostgreSQL parameter name from params as a whole
// number, def if it is not set; ok reports whether it is set.
func intParameter(params map[string]string, name string, def int) (v int, ok bool, err error) {
	s, ok := params[name]
	if !ok {
		return def, false, nil
	}
	v, err = strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, true, fmt.Errorf("%q is not a whole number", s)
	}
	return v, true, nil
}
