package pg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// PassEntry is one line of a pgpass file. "*" in Host, Port, Database or
// User matches anything; an empty field is written as "*". For a unix
// socket connection libpq (and pgx) look the entry up with Host
// "localhost".
type PassEntry struct{ Host, Port, Database, User, Password string }

// WritePgpass replaces the file at path with a pgpass file holding entries,
// one line each, in order (libpq uses the first match). Backslashes and
// colons inside fields are escaped with a backslash, as libpq expects. The
// file gets mode 0600 and is owned by o, and is written to a temporary file
// in the same directory, synced and renamed over path, so a reader sees the
// old or the new content, never a mix. It blocks on the file system and
// cannot be cancelled. It returns an error, leaving path untouched, if a
// field contains a line break (unrepresentable), or if creating, writing,
// chown-ing (a non-root caller can only give files to itself) or renaming
// fails.
func WritePgpass(path string, o Owner, entries []PassEntry) error {
	var b strings.Builder
	for i, e := range entries {
		fields := []string{e.Host, e.Port, e.Database, e.User, e.Password}
		for j, f := range fields {
			if strings.ContainsAny(f, "\r\n") {
				return fmt.Errorf("write pgpass %s: entry %d: a field contains a line break", path, i+1)
			}
			if j < 4 && f == "" {
				f = "*"
			}
			if f != "*" {
				f = escapePgpass(f)
			}
			if j > 0 {
				b.WriteByte(':')
			}
			b.WriteString(f)
		}
		b.WriteByte('\n')
	}
	if err := writeFileAtomic(path, []byte(b.String()), 0o600, o); err != nil {
		return fmt.Errorf("write pgpass %s: %w", path, err)
	}
	return nil
}

// escapePgpass escapes '\' and ':' in one pgpass field.
func escapePgpass(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// writeFileAtomic writes data to a temporary file next to path, owned by o
// with the given mode, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode, o Owner) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != o.UID || st.Gid != o.GID {
		if err = f.Chown(int(o.UID), int(o.GID)); err != nil {
			return err
		}
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable; failing to sync the directory is not worth
	// reporting a write that did happen.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
