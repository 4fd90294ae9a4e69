package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// StandbyCluster is standby_cluster: the cluster follows another one. Its
// leader is a standby leader that streams from Host:Port (and/or restores
// with RestoreCommand) and never promotes while the setting stays; the
// other members follow it. Removing standby_cluster from the config key
// promotes the standby leader.
type StandbyCluster struct {
	// Host is libpq's host: an address, a name, or a comma-separated list
	// of them (all on Port), usually a load balancer or a virtual address
	// that always reaches the remote primary.
	Host string
	Port int
	// PrimarySlotName is the physical slot on the remote to stream from.
	PrimarySlotName string
	// RestoreCommand, ArchiveCleanupCommand and RecoveryMinApplyDelay go
	// to the standby leader's recovery settings.
	RestoreCommand        string
	ArchiveCleanupCommand string
	RecoveryMinApplyDelay string
	// CreateReplicaMethods are the methods the first node clones the remote
	// with (default basebackup).
	CreateReplicaMethods []string
}

var hostListRE = regexp.MustCompile(`^[A-Za-z0-9_.:\[\]%-]+(,[A-Za-z0-9_.:\[\]%-]+)*$`)

// ParseStandbyCluster reads standby_cluster as Patroni does: it makes a
// standby cluster when it names a host, a port or a restore_command (nil
// otherwise). A value pg-ha cannot use is an error naming the key.
func ParseStandbyCluster(m map[string]any) (*StandbyCluster, error) {
	if !IsStandbyCluster(m) {
		return nil, nil
	}
	sc := &StandbyCluster{
		Host: ParamString(m["host"]), Port: 5432,
		PrimarySlotName:       ParamString(m["primary_slot_name"]),
		RestoreCommand:        ParamString(m["restore_command"]),
		ArchiveCleanupCommand: ParamString(m["archive_cleanup_command"]),
		RecoveryMinApplyDelay: ParamString(m["recovery_min_apply_delay"]),
	}
	if sc.Host != "" && !hostListRE.MatchString(sc.Host) {
		return nil, fmt.Errorf("standby_cluster.host %q is not a host name, an address or a comma-separated list of them", sc.Host)
	}
	if p, ok := m["port"]; ok && p != nil {
		n, err := strconv.Atoi(strings.TrimSpace(ParamString(p)))
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("standby_cluster.port %q is not a TCP port (1-65535)", ParamString(p))
		}
		sc.Port = n
	}
	if sc.PrimarySlotName != "" && !slotNameRE.MatchString(sc.PrimarySlotName) {
		return nil, fmt.Errorf("standby_cluster.primary_slot_name %q is not a slot name PostgreSQL takes ([a-z0-9_], at most 63)", sc.PrimarySlotName)
	}
	switch v := m["create_replica_methods"].(type) {
	case nil:
	case []any:
		for _, x := range v {
			sc.CreateReplicaMethods = append(sc.CreateReplicaMethods, ParamString(x))
		}
	case []string:
		sc.CreateReplicaMethods = append(sc.CreateReplicaMethods, v...)
	default:
		return nil, fmt.Errorf("standby_cluster.create_replica_methods is not a list of method names")
	}
	if sc.Host == "" && sc.RestoreCommand == "" {
		return nil, fmt.Errorf("standby_cluster names neither a host nor a restore_command: the standby leader would have nothing to follow")
	}
	return sc, nil
}

// ConnURL is the remote as a member's conn_url: postgres://host:port/postgres.
// Without Host it is "" (the standby leader restores from the archive only).
func (sc *StandbyCluster) ConnURL() string {
	if sc == nil || sc.Host == "" {
		return ""
	}
	host := sc.Host
	if strings.Contains(host, ":") && !strings.Contains(host, ",") && !strings.HasPrefix(host, "[") {
		return (&url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, strconv.Itoa(sc.Port)), Path: "/postgres"}).String()
	}
	return "postgres://" + host + ":" + strconv.Itoa(sc.Port) + "/postgres"
}

// IsStandbyCluster is Patroni's is_standby_cluster: standby_cluster names a
// host, a port or a restore_command.
func IsStandbyCluster(m map[string]any) bool {
	return Truthy(m["host"]) || Truthy(m["port"]) || Truthy(m["restore_command"])
}

// Truthy is Python's bool() of a YAML or JSON value, as Patroni tests its
// settings: nil, false, "", 0 and empty lists and maps are false.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case int:
		return x != 0
	case int64:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
