package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path, applies PATRONI_* overrides from environ
// (KEY=VALUE strings; nil means the process environment) and defaults, and returns the result
// with its warnings. It does not validate: call Validate for that. The error
// is one line naming the file.
func Load(path string, environ []string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("read config %s: %w", path, err)
	}
	cfg, warns, err := Parse(data, environ)
	if err != nil {
		return nil, warns, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.File = path
	return cfg, warns, nil
}

// Parse is Load without the file: data is the YAML text.
func Parse(data []byte, environ []string) (*Config, []string, error) {
	if environ == nil {
		environ = os.Environ()
	}
	envMap := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	env := func(k string) (string, bool) { v, ok := envMap[k]; return v, ok }
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && err.Error() != "EOF" {
		return nil, nil, fmt.Errorf("not valid YAML: %s", oneLine(err))
	}
	cfg := &Config{}
	var warns []string
	if root.Kind != 0 {
		doc := &root
		if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
			doc = doc.Content[0]
		}
		if doc.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("the top level must be a map of sections (scope, name, postgresql, …)")
		}
		w := &walker{lines: map[int]string{}}
		w.walk(doc, reflect.TypeOf(Config{}), "")
		warns = append(warns, w.unknown...)
		if len(w.errs) > 0 {
			return nil, warns, w.errs[0]
		}
		if err := doc.Decode(cfg); err != nil {
			return nil, warns, w.explain(err)
		}
		if err := parseMethods(doc, cfg); err != nil {
			return nil, warns, err
		}
	}
	if err := applyEnv(cfg, env); err != nil {
		return nil, warns, err
	}
	for name, u := range EnvUsers(environ) {
		if cfg.Bootstrap.Users == nil {
			cfg.Bootstrap.Users = map[string]User{}
		}
		cfg.Bootstrap.Users[name] = u
	}
	if cfg.Etcd != nil {
		if cfg.Etcd3 == nil {
			cfg.Etcd3 = cfg.Etcd
			warns = append(warns, "etcd: the etcd (v2) section is read as etcd3 endpoints; pg-ha speaks the v3 API only (rename the section to etcd3)")
		} else {
			warns = append(warns, "etcd: both etcd and etcd3 sections are present; using etcd3")
		}
	}
	applyDefaults(cfg)
	warns = append(warns, cfg.connectionWarnings()...)
	warns = append(warns, cfg.unimplemented()...)
	return cfg, warns, nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "yaml: ", "")), " ")
}

// walker finds keys the schema does not know, and remembers which key sits on
// which line so that decoding errors can name it.
type walker struct {
	unknown []string
	lines   map[int]string
	// errs has one error per key whose value does not fit its field, each
	// naming the key by its path (the line alone is ambiguous in flow style).
	errs []error
}

var freeForm = reflect.TypeOf(map[string]any{})

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Line > 0 && path != "" {
		if _, ok := w.lines[n.Line]; !ok {
			w.lines[n.Line] = path
		}
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	var extra map[string]bool
	switch path {
	case "bootstrap":
		// bootstrap.<method> holds a custom bootstrap method's options.
		extra = scalarSiblings(n, "method")
	case "postgresql":
		// postgresql.<method> holds a replica creation method's options.
		extra = listSiblings(n, "create_replica_methods")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := joinPath(path, k.Value)
		w.lines[k.Line] = key
		ft, ok := fields[k.Value]
		if !ok {
			if extra[k.Value] {
				continue
			}
			w.unknown = append(w.unknown, fmt.Sprintf("%s: unknown key (line %d), ignored", key, k.Line))
			continue
		}
		if ft == freeForm {
			continue
		}
		w.check(v, ft, key)
		w.walk(v, ft, key)
	}
}

// check decodes the value v of key into a fresh value of its field's type
// and records an error naming key if it does not fit. A boolean written any
// way ParseBool accepts (yes, on, 1, "true", …) is rewritten in place as a
// YAML boolean first. A map for a struct field is left to walk, field by
// field.
func (w *walker) check(v *yaml.Node, ft reflect.Type, key string) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	base := ft
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	switch {
	case base.Kind() == reflect.Bool && v.Kind == yaml.ScalarNode:
		if v.Tag == "!!null" {
			return
		}
		b, ok := ParseBool(v.Value)
		if !ok {
			w.errs = append(w.errs, fmt.Errorf("%s: %q is not a boolean; write true or false (line %d)", key, v.Value, v.Line))
			return
		}
		v.Tag, v.Value, v.Style = "!!bool", strconv.FormatBool(b), 0
		return
	case base.Kind() == reflect.Struct && v.Kind == yaml.MappingNode:
		return
	}
	if err := v.Decode(reflect.New(ft).Interface()); err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s: %s (line %d)", key, valueError(err), v.Line))
	}
}

// valueError is the message of a decoding error without yaml's prefixes
// and line numbers.
func valueError(err error) string {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	for strings.HasPrefix(msg, "line ") {
		_, rest, ok := strings.Cut(msg, ": ")
		if !ok {
			break
		}
		msg = rest
	}
	return msg
}

func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if opts == "inline" {
			collectFields(f.Type, out)
			continue
		}
		if name == "" {
			continue
		}
		out[name] = f.Type
	}
}

func scalarSiblings(n *yaml.Node, key string) map[string]bool {
	out := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			out[n.Content[i+1].Value] = true
		}
	}
	return out
}

func listSiblings(n *yaml.Node, key string) map[string]bool {
	out := map[string]bool{"basebackup": true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.SequenceNode {
			for _, it := range n.Content[i+1].Content {
				out[it.Value] = true
			}
		}
	}
	return out
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// explain turns a yaml.v3 decoding error into one line naming the key.
func (w *walker) explain(err error) error {
	var te *yaml.TypeError
	msg := oneLine(err)
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		rest := strings.TrimPrefix(msg, "line ")
		num, tail, _ := strings.Cut(rest, ":")
		if ln, e := strconv.Atoi(num); e == nil {
			if key, ok := w.lines[ln]; ok {
				tail = strings.TrimSpace(tail)
				tail = strings.TrimPrefix(tail, "line "+num+": ")
				return fmt.Errorf("%s: %s (line %d)", key, tail, ln)
			}
		}
	}
	return errors.New(msg)
}

// applyEnv applies Patroni's environment variables.
func applyEnv(c *Config, env func(string) (string, bool)) error {
	get := func(name string) (string, bool) {
		v, ok := env("PATRONI_" + name)
		return v, ok && v != ""
	}
	set := func(dst *string, name string) {
		if v, ok := get(name); ok {
			*dst = v
		}
	}
	set(&c.Name, "NAME")
	set(&c.Scope, "SCOPE")
	set(&c.Namespace, "NAMESPACE")

	set(&c.RestAPI.Listen, "RESTAPI_LISTEN")
	set(&c.RestAPI.ConnectAddress, "RESTAPI_CONNECT_ADDRESS")
	set(&c.RestAPI.CertFile, "RESTAPI_CERTFILE")
	set(&c.RestAPI.KeyFile, "RESTAPI_KEYFILE")
	set(&c.RestAPI.KeyFilePassword, "RESTAPI_KEYFILE_PASSWORD")
	set(&c.RestAPI.CAFile, "RESTAPI_CAFILE")
	set(&c.RestAPI.VerifyClient, "RESTAPI_VERIFY_CLIENT")
	if u, ok := get("RESTAPI_USERNAME"); ok {
		if c.RestAPI.Authentication == nil {
			c.RestAPI.Authentication = &BasicAuth{}
		}
		c.RestAPI.Authentication.Username = u
	}
	if p, ok := get("RESTAPI_PASSWORD"); ok {
		if c.RestAPI.Authentication == nil {
			c.RestAPI.Authentication = &BasicAuth{}
		}
		c.RestAPI.Authentication.Password = p
	}

	set(&c.Postgres.Listen, "POSTGRESQL_LISTEN")
	set(&c.Postgres.ConnectAddress, "POSTGRESQL_CONNECT_ADDRESS")
	set(&c.Postgres.ProxyAddress, "POSTGRESQL_PROXY_ADDRESS")
	set(&c.Postgres.DataDir, "POSTGRESQL_DATA_DIR")
	set(&c.Postgres.ConfigDir, "POSTGRESQL_CONFIG_DIR")
	set(&c.Postgres.BinDir, "POSTGRESQL_BIN_DIR")
	set(&c.Postgres.PgPass, "POSTGRESQL_PGPASS")
	for _, r := range []struct {
		prefix string
		cred   *Credentials
	}{
		{"SUPERUSER", &c.Postgres.Authentication.Superuser},
		{"REPLICATION", &c.Postgres.Authentication.Replication},
		{"REWIND", &c.Postgres.Authentication.Rewind},
	} {
		set(&r.cred.Username, r.prefix+"_USERNAME")
		set(&r.cred.Password, r.prefix+"_PASSWORD")
		set(&r.cred.SSLMode, r.prefix+"_SSLMODE")
		set(&r.cred.SSLCert, r.prefix+"_SSLCERT")
		set(&r.cred.SSLKey, r.prefix+"_SSLKEY")
		set(&r.cred.SSLRootCert, r.prefix+"_SSLROOTCERT")
		set(&r.cred.SSLCRL, r.prefix+"_SSLCRL")
	}

	for _, sec := range []string{"ETCD3", "ETCD"} {
		var e Etcd
		touched := false
		for suffix, dst := range map[string]*string{
			"HOST": &e.Host, "URL": &e.URL, "PROXY": &e.Proxy, "SRV": &e.SRV, "SRV_SUFFIX": &e.SRVSuffix,
			"PROTOCOL": &e.Protocol, "USERNAME": &e.Username, "PASSWORD": &e.Password,
			"CACERT": &e.CACert, "CERT": &e.Cert, "KEY": &e.Key, "KEY_PASSWORD": &e.KeyPass,
		} {
			if v, ok := get(sec + "_" + suffix); ok {
				*dst, touched = v, true
			}
		}
		if v, ok := get(sec + "_HOSTS"); ok {
			e.Hosts, touched = parseEnvList(v), true
		}
		if !touched {
			continue
		}
		target := &c.Etcd3
		if sec == "ETCD" {
			target = &c.Etcd
		}
		if *target == nil {
			*target = &Etcd{}
		}
		mergeEtcd(*target, &e)
	}

	return nil
}

func mergeEtcd(dst, src *Etcd) {
	if src.Hosts != nil {
		dst.Hosts, dst.Host, dst.URL, dst.URLs = src.Hosts, "", "", nil
	}
	if src.Host != "" {
		dst.Host, dst.Hosts, dst.URL, dst.URLs = src.Host, nil, "", nil
	}
	if src.URL != "" {
		dst.URL, dst.Host, dst.Hosts, dst.URLs = src.URL, "", nil, nil
	}
	for _, p := range []struct{ d, s *string }{
		{&dst.Proxy, &src.Proxy}, {&dst.SRV, &src.SRV}, {&dst.SRVSuffix, &src.SRVSuffix}, {&dst.Protocol, &src.Protocol},
		{&dst.Username, &src.Username}, {&dst.Password, &src.Password}, {&dst.CACert, &src.CACert},
		{&dst.Cert, &src.Cert}, {&dst.Key, &src.Key}, {&dst.KeyPass, &src.KeyPass},
	} {
		if *p.s != "" {
			*p.d = *p.s
		}
	}
}

// parseEnvList reads "a:1,b:2", "[a:1, b:2]" or a YAML list.
func parseEnvList(v string) StringList {
	var l StringList
	s := strings.TrimSpace(v)
	if strings.HasPrefix(s, "[") || strings.HasPrefix(s, "-") {
		var out []string
		if yaml.Unmarshal([]byte(s), &out) == nil {
			return out
		}
		s = strings.Trim(s, "[]")
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"'`); p != "" {
			l = append(l, p)
		}
	}
	return l
}

// EnvUsers returns bootstrap users given as PATRONI_<USER>_PASSWORD and
// PATRONI_<USER>_OPTIONS in environ (KEY=VALUE strings), as Patroni reads them.
func EnvUsers(environ []string) map[string]User {
	reserved := map[string]bool{"SUPERUSER": true, "REPLICATION": true, "REWIND": true, "RESTAPI": true,
		"ETCD": true, "ETCD3": true, "RAFT": true, "CONSUL": true, "ZOOKEEPER": true, "RESTAPI_KEYFILE": true, "CTL_KEYFILE": true, "ETCD3_KEY": true, "ETCD_KEY": true}
	vals := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PATRONI_") {
			vals[k] = v
		}
	}
	out := map[string]User{}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, ok := strings.CutSuffix(strings.TrimPrefix(k, "PATRONI_"), "_PASSWORD")
		if !ok || name == "" || reserved[name] || vals[k] == "" {
			continue
		}
		u := User{Password: vals[k]}
		if o := vals["PATRONI_"+name+"_OPTIONS"]; o != "" {
			u.Options = parseEnvList(o)
		}
		out[strings.ToLower(name)] = u
	}
	return out
}

func applyDefaults(c *Config) {
	if c.Namespace == "" {
		c.Namespace = "/service/"
	}
	if c.Postgres.Authentication.Superuser.Username == "" {
		c.Postgres.Authentication.Superuser.Username = "postgres"
	}
	if c.Postgres.ConnectAddress == "" && c.Postgres.Listen != "" {
		if h, p, ok := lastHostPort(c.Postgres.Listen); ok && h != "0.0.0.0" && h != "*" && h != "::" {
			c.Postgres.ConnectAddress = h + ":" + p
		}
	}
	if c.RestAPI.ConnectAddress == "" && c.RestAPI.Listen != "" {
		if h, p, ok := lastHostPort(c.RestAPI.Listen); ok && h != "0.0.0.0" && h != "" && h != "::" {
			c.RestAPI.ConnectAddress = h + ":" + p
		}
	}
}
