package pgdata

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
)

const confHeader = "# Written by pg-ha from the node's YAML; edits here are overwritten.\n"

// BaseConf is where a postgresql.conf pg-ha did not write is kept, and
// included from pg-ha's own postgresql.conf.
const BaseConf = "postgresql.base.conf"

// Standby is the recovery part of the configuration.
type Standby struct {
	// PrimaryConnInfo is the leader's connection string without password;
	// empty for a standby with no upstream.
	PrimaryConnInfo string
	// SlotName is the physical slot to stream from; empty for none.
	SlotName string
	// Recovery are further recovery settings for the standby, from
	// postgresql.recovery_conf as StandbyRecovery filters them
	// (restore_command, archive_cleanup_command, recovery_min_apply_delay,
	// …), so that it can fetch WAL from an archive.
	Recovery map[string]string
}

// recoveryTargets are the settings that end recovery at a target. A standby
// never has one: it would stop replaying, pause or promote by itself. They
// are written empty so that none set in an included file applies, and
// recovery_target_timeline is always latest, as in Patroni.
var recoveryTargets = []string{"recovery_target", "recovery_target_lsn", "recovery_target_name",
	"recovery_target_time", "recovery_target_xid"}

// RecoveryParams renders recovery settings (a recovery_conf section of the
// YAML) as server parameters: values as postgresql.conf strings,
// trigger_file under its current name promote_trigger_file, and
// standby_mode, which PostgreSQL 12 replaced by standby.signal, left out.
func RecoveryParams(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		switch k = strings.ToLower(k); k {
		case "standby_mode":
			continue
		case "trigger_file":
			k = "promote_trigger_file"
		}
		out[k] = config.ParamString(v)
	}
	return out
}

// StandbyRecovery are the settings of postgresql.recovery_conf a standby
// gets (see Standby.Recovery): RecoveryParams without the recovery targets
// and without primary_conninfo and primary_slot_name, which pg-ha sets for
// the leader it follows. Nil when none is left.
func StandbyRecovery(m map[string]any) map[string]string {
	out := RecoveryParams(m)
	for k := range out {
		if strings.HasPrefix(k, "recovery_target") || k == "primary_conninfo" || k == "primary_slot_name" {
			delete(out, k)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// WriteConf writes postgresql.conf in dataDir with params, and the standby
// settings when sb is not nil (plus standby.signal; the recovery settings
// of a standby are never written for a primary); with sb nil it removes
// standby.signal. A postgresql.conf pg-ha did not write is first moved to
// postgresql.base.conf, which is included, or dropped if Patroni wrote it
// (see adoptConf); it fails rather than overwrite postgresql.base.conf or
// leave a configuration PostgreSQL would reject as recursive. A
// recovery.signal is removed: pg-ha never runs archive recovery, and with
// it PostgreSQL would end recovery and promote by itself. Files are
// replaced atomically and owned by o.
func WriteConf(dataDir string, o pg.Owner, params map[string]string, sb *Standby) error {
	if err := adoptConf(dataDir, o); err != nil {
		return err
	}
	path := filepath.Join(dataDir, "postgresql.conf")
	if err := writeAtomic(path, RenderConf(dataDir, params, sb), 0o600, o); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dataDir, "recovery.signal")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove recovery.signal: %w", err)
	}
	return SetStandbySignal(dataDir, o, sb != nil)
}

// RenderConf returns the postgresql.conf WriteConf would write now.
func RenderConf(dataDir string, params map[string]string, sb *Standby) []byte {
	var b strings.Builder
	b.WriteString(confHeader)
	if _, err := os.Stat(filepath.Join(dataDir, BaseConf)); err == nil {
		fmt.Fprintf(&b, "include_if_exists = '%s'\n", BaseConf)
	}
	all := map[string]string{}
	for k, v := range params {
		all[k] = v
	}
	// The recovery targets are written, empty, for a primary too: they
	// can only be set at server start, so a line that disappears at a
	// promotion would leave the new primary flagged pending_restart.
	for _, k := range recoveryTargets {
		all[k] = ""
	}
	all["recovery_target_timeline"] = "latest"
	if sb != nil {
		for k, v := range sb.Recovery {
			all[k] = v
		}
		for _, k := range recoveryTargets {
			all[k] = ""
		}
		all["recovery_target_timeline"] = "latest"
		all["primary_conninfo"] = sb.PrimaryConnInfo
		all["primary_slot_name"] = sb.SlotName
	} else {
		all["primary_conninfo"] = ""
		all["primary_slot_name"] = ""
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quote(all[k]))
	}
	return []byte(b.String())
}

// SetParameter sets one parameter in the postgresql.conf pg-ha wrote in
// dataDir, leaving every other line and standby.signal as they are (a
// server in the middle of a promotion must find its recovery settings
// unchanged). The file is replaced atomically.
func SetParameter(dataDir string, o pg.Owner, name, value string) error {
	path := filepath.Join(dataDir, "postgresql.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	if !bytes.HasPrefix(old, []byte(confHeader)) {
		return fmt.Errorf("set %s: %s was not written by pg-ha", name, path)
	}
	var head, params []string
	for _, line := range strings.Split(strings.TrimSuffix(string(old), "\n"), "\n") {
		k, _, ok := strings.Cut(line, " = ")
		switch {
		case !ok || strings.HasPrefix(line, "#") || k == "include_if_exists":
			head = append(head, line)
		case k != name:
			params = append(params, line)
		}
	}
	params = append(params, name+" = "+quote(value))
	sort.Strings(params)
	out := strings.Join(append(head, params...), "\n") + "\n"
	return writeAtomic(path, []byte(out), 0o600, o)
}

// quote renders a value as a postgresql.conf string literal.
func quote(v string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", "''") + "'"
}

// SetStandbySignal creates or removes standby.signal.
func SetStandbySignal(dataDir string, o pg.Owner, on bool) error {
	p := filepath.Join(dataDir, "standby.signal")
	if !on {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove standby.signal: %w", err)
		}
		return nil
	}
	return writeAtomic(p, nil, 0o600, o)
}

// IsStandby reports whether standby.signal exists in dataDir.
func IsStandby(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "standby.signal"))
	return err == nil
}

// WriteHBA replaces pg_hba.conf with lines, keeping local access for the
// owner's unix socket connections first so that the daemons can always
// reach their own server, with SQL and with replication commands (a
// standby's replayed timeline is only known through IDENTIFY_SYSTEM).
func WriteHBA(dataDir string, o pg.Owner, lines []string, superuser string) error {
	if err := writeAtomic(filepath.Join(dataDir, "pg_hba.conf"), RenderHBA(lines, superuser), 0o600, o); err != nil {
		return err
	}
	return WriteIdent(dataDir, o, superuser)
}

// RenderHBA returns the pg_hba.conf WriteHBA writes.
func RenderHBA(lines []string, superuser string) []byte {
	var b strings.Builder
	b.WriteString(confHeader)
	fmt.Fprintf(&b, "local all %s peer map=pgha\n", superuser)
	fmt.Fprintf(&b, "local replication %s peer map=pgha\n", superuser)
	for _, l := range lines {
		b.WriteString(strings.TrimSpace(l))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// WriteIdentLines replaces pg_ident.conf with lines and the map of the
// owner to the superuser that WriteIdent keeps.
func WriteIdentLines(dataDir string, o pg.Owner, lines []string, superuser string) error {
	return writeAtomic(filepath.Join(dataDir, "pg_ident.conf"), RenderIdent(lines, o, superuser), 0o600, o)
}

// RenderIdent returns the pg_ident.conf WriteIdentLines writes.
func RenderIdent(lines []string, o pg.Owner, superuser string) []byte {
	var b strings.Builder
	b.WriteString(confHeader)
	for _, l := range lines {
		b.WriteString(strings.TrimSpace(l))
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "pgha %s %s\n", o.Name, superuser)
	return []byte(b.String())
}

// WriteIdent maps the data directory's OS owner to the superuser role for
// local peer connections, so the daemons connect without a password file.
func WriteIdent(dataDir string, o pg.Owner, superuser string) error {
	path := filepath.Join(dataDir, "pg_ident.conf")
	old, _ := os.ReadFile(path)
	line := fmt.Sprintf("pgha %s %s\n", o.Name, superuser)
	if bytes.Contains(old, []byte(line)) {
		return nil
	}
	var keep []string
	for _, l := range strings.Split(string(old), "\n") {
		if !strings.HasPrefix(l, "pgha ") && l != "" {
			keep = append(keep, l)
		}
	}
	data := strings.Join(keep, "\n")
	if data != "" {
		data += "\n"
	}
	return writeAtomic(path, []byte(data+line), 0o600, o)
}

func writeAtomic(path string, data []byte, mode os.FileMode, o pg.Owner) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if err := tmp.Chown(int(o.UID), int(o.GID)); err != nil {
			tmp.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WasPrimaryFile, in the data directory, records the leader token under which
// PostgreSQL last ran as a primary. While it exists the data may have
// diverged from the next leader's, so it is checked with pg_rewind before
// following anyone; a clone never keeps the source's copy.
const WasPrimaryFile = "pg-ha.was-primary"
