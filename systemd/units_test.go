// Package systemd holds pg-ha's systemd units; its tests check them: that
// systemd accepts them, how well they are sandboxed, that they are wired to
// each other and to the programs' flags, and that the role pipe works the
// way the units set it up.
package systemd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// templates are the unit files this directory must hold, no more, no less.
var templates = []string{
	"pg-ha@.target",
	"pg-ha-bootstrap@.service",
	"pg-ha-role@.socket",
	"pg-ha-supervise@.service",
	"pg-ha-lockd@.service",
	"pg-ha-healthd@.socket",
	"pg-ha-healthd@.service",
	"pg-ha-rebuild@.service",
	"pg-ha-rebuild@.timer",
}

// services are the templates that run a program.
func services() []string {
	var s []string
	for _, n := range templates {
		if strings.HasSuffix(n, ".service") {
			s = append(s, n)
		}
	}
	return s
}

// instance is the instance name the tests use, as in pg-ha@main.target.
const instance = "main"

// instanceName turns a template name into an instance name.
func instanceName(template string) string {
	return strings.Replace(template, "@.", "@"+instance+".", 1)
}

// unit is a parsed unit file: section → key → assignments in order.
type unit struct {
	name     string
	sections map[string]map[string][]string
}

// parseUnit reads a unit file the way systemd does for what the tests need:
// comments, sections, Key=Value, backslash continuations. Specifiers are
// left alone; see expand.
func parseUnit(path string) (*unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &unit{name: filepath.Base(path), sections: map[string]map[string][]string{}}
	section := ""
	sc := bufio.NewScanner(f)
	lineNo := 0
	var cont strings.Builder
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		if cont.Len() > 0 {
			line = cont.String() + line
			cont.Reset()
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u.sections[section] == nil {
				u.sections[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("%s:%d: not an assignment in a section: %q", path, lineNo, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u.sections[section][k] = append(u.sections[section][k], v)
	}
	return u, sc.Err()
}

// all returns the assignments of key after the last empty one (an empty
// assignment resets a list in systemd).
func (u *unit) all(section, key string) []string {
	vs := u.sections[section][key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] == "" {
			return vs[i+1:]
		}
	}
	return vs
}

// fields returns every space-separated word of all assignments of key.
func (u *unit) fields(section, key string) []string {
	var out []string
	for _, v := range u.all(section, key) {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// get returns the last assignment of key and whether there is one.
func (u *unit) get(section, key string) (string, bool) {
	vs := u.sections[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// must returns the last assignment of key, failing t if there is none.
func (u *unit) must(t testing.TB, section, key string) string {
	t.Helper()
	v, ok := u.get(section, key)
	if !ok {
		t.Fatalf("%s: [%s] %s= missing", u.name, section, key)
	}
	return v
}

// expand resolves the specifiers the units use: %i (the instance) and %%.
// Any other specifier is an error, so a new one gets handled on purpose.
func expand(s, inst string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q: trailing %%", s)
		}
		i++
		switch s[i] {
		case 'i':
			b.WriteString(inst)
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("%q: specifier %%%c not handled by the tests", s, s[i])
		}
	}
	return b.String(), nil
}

func mustExpand(t testing.TB, s string) string {
	t.Helper()
	v, err := expand(s, instance)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// loadUnits parses every template of this directory.
func loadUnits(t testing.TB) map[string]*unit {
	t.Helper()
	units := map[string]*unit{}
	for _, n := range templates {
		u, err := parseUnit(n)
		if err != nil {
			t.Fatal(err)
		}
		units[n] = u
	}
	return units
}

// execStart returns the argument vector of a service's ExecStart=.
func execStart(t testing.TB, u *unit) []string {
	t.Helper()
	cmds := u.all("Service", "ExecStart")
	if len(cmds) != 1 {
		t.Fatalf("%s: want exactly one ExecStart=, have %q", u.name, cmds)
	}
	args := strings.Fields(cmds[0])
	if len(args) == 0 || !strings.HasPrefix(args[0], "/") {
		t.Fatalf("%s: ExecStart=%q: want an absolute path without prefixes", u.name, cmds[0])
	}
	if strings.ContainsAny(cmds[0], `"'\$`) {
		t.Fatalf("%s: ExecStart=%q: quoting and variables are not handled by these tests", u.name, cmds[0])
	}
	return args
}

// flagValue returns the value of --name in args ("--name value" or
// "--name=value").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestUnitFilesPresent(t *testing.T) {
	var found []string
	for _, pat := range []string{"*.service", "*.socket", "*.target", "*.timer", "*.path", "*.mount"} {
		m, _ := filepath.Glob(pat)
		found = append(found, m...)
	}
	sort.Strings(found)
	want := slices.Clone(templates)
	sort.Strings(want)
	if !slices.Equal(found, want) {
		t.Fatalf("unit files here: %q\nthe tests know: %q\n(add new units to templates)", found, want)
	}
}

// TestUnitReferences checks that every pg-ha unit a unit names exists, that
// the target pulls in the node and that every part stops with it.
func TestUnitReferences(t *testing.T) {
	units := loadUnits(t)
	exists := map[string]bool{}
	for _, n := range templates {
		exists[n] = true
	}
	refs := map[string][]string{
		"Unit":    {"Wants", "Requires", "Requisite", "BindsTo", "PartOf", "After", "Before", "Conflicts"},
		"Socket":  {"Service"},
		"Timer":   {"Unit"},
		"Service": {"Sockets"},
	}
	for _, n := range templates {
		u := units[n]
		for section, keys := range refs {
			for _, k := range keys {
				for _, ref := range u.fields(section, k) {
					if !strings.HasPrefix(ref, "pg-ha") {
						continue
					}
					tmpl := strings.Replace(ref, "@%i.", "@.", 1)
					if tmpl == ref || !exists[tmpl] {
						t.Errorf("%s: %s=%s: no such pg-ha template instance here", n, k, ref)
					}
				}
			}
		}
	}

	target := units["pg-ha@.target"]
	wanted := target.fields("Unit", "Wants")
	for _, n := range templates {
		if n == "pg-ha@.target" {
			continue
		}
		inst := strings.Replace(n, "@.", "@%i.", 1)
		// The rebuild service runs from its timer only.
		if n != "pg-ha-rebuild@.service" && !slices.Contains(wanted, inst) {
			t.Errorf("pg-ha@.target does not want %s", inst)
		}
		if got := units[n].fields("Unit", "PartOf"); !slices.Equal(got, []string{"pg-ha@%i.target"}) {
			t.Errorf("%s: PartOf=%q, want pg-ha@%%i.target", n, got)
		}
		if _, ok := units[n].sections["Install"]; ok {
			t.Errorf("%s has an [Install] section: only pg-ha@.target is enabled", n)
		}
	}
	if got := target.fields("Install", "WantedBy"); !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("pg-ha@.target: WantedBy=%q", got)
	}
}

// TestServiceSettings checks what every service must share and what the
// design requires of each.
func TestServiceSettings(t *testing.T) {
	units := loadUnits(t)
	for _, n := range services() {
		u := units[n]
		for k, want := range map[string]string{
			"User":                     "postgres",
			"Group":                    "postgres",
			"RuntimeDirectory":         "pg-ha/%i",
			"RuntimeDirectoryPreserve": "yes",
			"EnvironmentFile":          "-/etc/pg-ha/%i.env",
			"NoNewPrivileges":          "yes",
			"ProtectSystem":            "strict",
			"CapabilityBoundingSet":    "",
			"UMask":                    "0077",
			"SystemCallArchitectures":  "native",
			"RestrictAddressFamilies":  "AF_UNIX AF_INET AF_INET6",
			"ProtectProc":              "invisible",
			"ProcSubset":               "pid",
			"SystemCallErrorNumber":    "EPERM",
			"DevicePolicy":             "closed",
		} {
			if got, ok := u.get("Service", k); !ok || got != want {
				t.Errorf("%s: %s=%q (set: %v), want %q", n, k, got, ok, want)
			}
		}
		args := execStart(t, u)
		if !strings.HasPrefix(args[0], "/usr/bin/pg-") {
			t.Errorf("%s: ExecStart runs %s, want /usr/bin/pg-* (install.mk rewrites that prefix)", n, args[0])
		}
		if cfg, _ := flagValue(args, "config"); cfg != "/etc/pg-ha/%i.yml" {
			t.Errorf("%s: --config %q, want /etc/pg-ha/%%i.yml", n, cfg)
		}
		// pg-supervise runs PostgreSQL: see its unit for why these differ.
		if want := map[bool]string{true: "no", false: "yes"}[n == "pg-ha-supervise@.service"]; u.must(t, "Service", "PrivateUsers") != want {
			t.Errorf("%s: PrivateUsers=%s, want %s", n, u.must(t, "Service", "PrivateUsers"), want)
		}
		mdwe := u.must(t, "Service", "MemoryDenyWriteExecute")
		if want := map[bool]string{true: "no", false: "yes"}[n == "pg-ha-supervise@.service"]; mdwe != want {
			t.Errorf("%s: MemoryDenyWriteExecute=%s, want %s", n, mdwe, want)
		}
	}

	for _, n := range []string{"pg-ha-supervise@.service", "pg-ha-lockd@.service", "pg-ha-healthd@.service"} {
		u := units[n]
		for k, want := range map[string]string{"Type": "notify", "NotifyAccess": "main", "Restart": "always"} {
			if got := u.must(t, "Service", k); got != want {
				t.Errorf("%s: %s=%s, want %s", n, k, got, want)
			}
		}
		u.must(t, "Service", "WatchdogSec")
	}
	// `systemctl reload pg-ha@X.target` reaches the daemons that re-read
	// the YAML on SIGHUP (pg-healthd reads it only at start).
	for _, n := range []string{"pg-ha-supervise@.service", "pg-ha-lockd@.service"} {
		u := units[n]
		if got := u.must(t, "Service", "ExecReload"); got != "/bin/kill -HUP $MAINPID" {
			t.Errorf("%s: ExecReload=%s, want /bin/kill -HUP $MAINPID", n, got)
		}
		if !slices.Contains(u.fields("Unit", "ReloadPropagatedFrom"), "pg-ha@%i.target") {
			t.Errorf("%s: ReloadPropagatedFrom= lacks pg-ha@%%i.target", n)
		}
	}

	sv := units["pg-ha-supervise@.service"]
	// PostgreSQL must not outlive pg-supervise: see the unit's comments.
	for k, want := range map[string]string{"KillMode": "mixed", "SendSIGKILL": "yes", "KillSignal": "SIGTERM"} {
		if got := sv.must(t, "Service", k); got != want {
			t.Errorf("pg-ha-supervise@.service: %s=%s, want %s", k, got, want)
		}
	}
	if got := sv.must(t, "Service", "WatchdogSec"); got != "4" {
		t.Errorf("pg-ha-supervise@.service: WatchdogSec=%s: keep it well below the default ttl of 8 s (4)", got)
	}
	if got := units["pg-ha-lockd@.service"].must(t, "Service", "RestartSec"); got != "0" {
		t.Errorf("pg-ha-lockd@.service: RestartSec=%s, want 0 (restart within the lease)", got)
	}
	bs := units["pg-ha-bootstrap@.service"]
	if bs.must(t, "Service", "Type") != "oneshot" || bs.must(t, "Service", "RemainAfterExit") != "yes" {
		t.Error("pg-ha-bootstrap@.service: want Type=oneshot, RemainAfterExit=yes")
	}
	if args := execStart(t, units["pg-ha-rebuild@.service"]); !slices.Contains(args, "--rebuild") {
		t.Errorf("pg-ha-rebuild@.service: ExecStart %q lacks --rebuild", args)
	}
	// The daemons that need the data directory start after pg-bootstrap.
	for _, n := range []string{"pg-ha-supervise@.service", "pg-ha-lockd@.service"} {
		u := units[n]
		for _, k := range []string{"Requires", "After"} {
			if !slices.Contains(u.fields("Unit", k), "pg-ha-bootstrap@%i.service") {
				t.Errorf("%s: %s= lacks pg-ha-bootstrap@%%i.service", n, k)
			}
		}
	}
	if !slices.Contains(units["pg-ha-lockd@.service"].fields("Unit", "After"), "pg-ha-supervise@%i.service") {
		t.Error("pg-ha-lockd@.service must be ordered after pg-ha-supervise@%i.service (stops first)")
	}
}

// TestRolePipeUnits checks the static wiring of the role pipe: the FIFO of
// the socket unit is the file pg-lockd writes and pg-supervise reads, it
// lies in both services' runtime directory, and its owner and mode let the
// services' user, and only it, open it.
func TestRolePipeUnits(t *testing.T) {
	units := loadUnits(t)
	sock := units["pg-ha-role@.socket"]
	fifo := sock.must(t, "Socket", "ListenFIFO")
	ends := map[string]string{"pg-ha-supervise@.service": "input", "pg-ha-lockd@.service": "output"}
	for n, flag := range ends {
		u := units[n]
		got, ok := flagValue(execStart(t, u), flag)
		if !ok || got != fifo {
			t.Errorf("%s: --%s %q, want the socket's ListenFIFO %q", n, flag, got, fifo)
		}
		rd := "/run/" + u.must(t, "Service", "RuntimeDirectory")
		if filepath.Dir(fifo) != rd {
			t.Errorf("%s: FIFO %s is not in the runtime directory %s", n, fifo, rd)
		}
		for _, k := range []string{"Requires", "After"} {
			if !slices.Contains(u.fields("Unit", k), "pg-ha-role@%i.socket") {
				t.Errorf("%s: %s= lacks pg-ha-role@%%i.socket", n, k)
			}
		}
		if user := u.must(t, "Service", "User"); user != sock.must(t, "Socket", "SocketUser") {
			t.Errorf("%s runs as %s, the FIFO belongs to %s", n, user, sock.must(t, "Socket", "SocketUser"))
		}
	}
	for k, want := range map[string]string{
		"SocketMode":         "0600",
		"SocketGroup":        "postgres",
		"Service":            "pg-ha-supervise@%i.service",
		"FileDescriptorName": "role",
		// systemd reuses an existing FIFO only if root owns it: see the unit.
		"RemoveOnStop": "yes",
	} {
		if got := sock.must(t, "Socket", k); got != want {
			t.Errorf("pg-ha-role@.socket: %s=%s, want %s", k, got, want)
		}
	}

	hs := units["pg-ha-healthd@.socket"]
	if got := hs.must(t, "Socket", "ListenStream"); got != "8008" {
		t.Errorf("pg-ha-healthd@.socket: ListenStream=%s; the README and example say 8008", got)
	}
	if got := hs.must(t, "Socket", "FileDescriptorName"); got != "restapi" {
		t.Errorf("pg-ha-healthd@.socket: FileDescriptorName=%s, want restapi", got)
	}
}

func TestExpand(t *testing.T) {
	for in, want := range map[string]string{
		"/run/pg-ha/%i/role.fifo": "/run/pg-ha/main/role.fifo",
		"100%%":                   "100%",
		"plain":                   "plain",
	} {
		if got, err := expand(in, "main"); err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%n", "x%"} {
		if _, err := expand(bad, "main"); err == nil {
			t.Errorf("expand(%q): want an error", bad)
		}
	}
}
