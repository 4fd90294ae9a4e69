package testcluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// secrets are the cluster-wide passwords every node's YAML carries.
type secrets struct {
	superuser, replication, rewind string
}

func newSecrets() secrets {
	return secrets{superuser: randomHex(12), replication: randomHex(12), rewind: randomHex(12)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// seconds writes d the way Patroni's YAML carries durations: a number of
// seconds, fractional if need be.
func seconds(d time.Duration) float64 { return d.Seconds() }

// nodeConfig returns node n's YAML in Patroni's schema.
func nodeConfig(c *Cluster, n *Node, etcdHosts []string) ([]byte, error) {
	o := c.Options
	params := map[string]any{
		"wal_keep_size":         "256MB",
		"wal_log_hints":         "on",
		"max_wal_senders":       10,
		"max_replication_slots": 10,
		"fsync":                 "off",
	}
	local := map[string]any{"unix_socket_directories": n.Dir}
	for k, v := range o.ExtraParameters {
		local[k] = v
	}
	tags := map[string]any{}
	if o.Tags != nil {
		maps.Copy(tags, o.Tags(n.Index))
	}
	pgAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.PGPort))
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.APIPort))
	restapi := map[string]any{"listen": apiAddr, "connect_address": apiAddr}
	maps.Copy(restapi, o.ExtraRestAPI)
	doc := map[string]any{
		"scope":     c.Scope,
		"namespace": "/service/",
		"name":      n.Name,
		"restapi":   restapi,
		"etcd3":     map[string]any{"hosts": etcdHosts},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":                     seconds(o.TTL),
				"loop_wait":               seconds(o.LoopWait),
				"retry_timeout":           seconds(o.RetryTimeout),
				"maximum_lag_on_failover": o.MaximumLagOnFailover,
				"postgresql": map[string]any{
					"use_pg_rewind": !o.DisablePgRewind,
					"use_slots":     !o.DisableSlots,
					"parameters":    params,
				},
			},
			"initdb": append([]any{map[string]any{"encoding": "UTF8"}, "data-checksums"}, initdbWALDir(o, n)...),
			"pg_hba": []string{
				"local all all trust",
				"host replication replicator 127.0.0.1/32 md5",
				"host all all 127.0.0.1/32 md5",
			},
		},
		"postgresql": map[string]any{
			"listen":          pgAddr,
			"connect_address": pgAddr,
			"data_dir":        n.DataDir,
			"bin_dir":         pgBinDir(),
			"pgpass":          n.Dir + "/pgpass",
			"authentication": map[string]any{
				"superuser":   map[string]any{"username": "postgres", "password": c.secrets.superuser},
				"replication": map[string]any{"username": "replicator", "password": c.secrets.replication},
				"rewind":      map[string]any{"username": "rewind_user", "password": c.secrets.rewind},
			},
			"parameters": local,
		},
		"tags": tags,
	}
	if o.ExtraPostgres != nil {
		maps.Copy(doc["postgresql"].(map[string]any), o.ExtraPostgres(n.Index))
	}
	maps.Copy(doc["bootstrap"].(map[string]any), o.ExtraBootstrap)
	dcs := doc["bootstrap"].(map[string]any)["dcs"].(map[string]any)
	if err := putSync(dcs, o); err != nil {
		return nil, err
	}
	maps.Copy(dcs, o.ExtraDCS)
	if o.Patroni && o.EtcdProxy {
		// Patroni otherwise asks etcd for its members' client URLs and talks
		// to those, past the node's proxy, so PartitionFromEtcd would not
		// cut it off.
		doc["etcd3"].(map[string]any)["use_proxies"] = true
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("marshal %s config: %w", n.Name, err)
	}
	return append([]byte("# written by lib/testcluster\n"), b...), nil
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1. All listeners
// are held until every port is known, so the ports are distinct; another
// process may still take one before the node binds it.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port on 127.0.0.1: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
