package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// restoreScript is a replica creation method as operators write them: it
// restores a tar base backup taken earlier into --datadir and fetches WAL
// from an archive directory. Its first run fails on purpose (the marker
// file says it ran), so that the next method has to take over.
const restoreScript = `#!/bin/sh
set -e
for a in "$@"; do
	case "$a" in
	--datadir=*) datadir=${a#*=} ;;
	--backup=*) backup=${a#*=} ;;
	--archive=*) archive=${a#*=} ;;
	--scope=*|--role=*|--connstring=*) ;;
	*) echo "unexpected argument $a" >&2; exit 2 ;;
	esac
done
if [ ! -e "$backup/ran-once" ]; then
	touch "$backup/ran-once"
	echo "restore: backup store unreachable (first attempt fails on purpose)" >&2
	exit 3
fi
echo "restore: 10%"
tar -xf "$backup/base.tar" -C "$datadir"
echo "restore_command = 'cp $archive/%f %p'" >> "$datadir/postgresql.auto.conf"
echo "restore: 100%"
`

// TestReplicaMethodsAndRebuild: replicas are made by the configured
// methods and rebuilt safely, with an application writing to the primary
// throughout and nothing acknowledged lost:
//   - create_replica_methods [restore, basebackup]: the restore method
//     fails once and basebackup takes over in the same run, copying from
//     the member tagged clonefrom rather than the primary; run again, the
//     method restores the tar backup plus archived WAL and the replica
//     streams;
//   - rebuild of a replica whose pg_control was removed (no pg-supervise
//     running: pg-bootstrap copies itself) and of one whose WAL the
//     needs was removed from the primary (through pg-supervise); each exits 12 and keeps exactly one
//     old copy aside;
//   - refused, with nothing changed: on the leader (13), a second run while
//     one runs (14), not enough disk space (15).
func TestReplicaMethodsAndRebuild(t *testing.T) {
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	shared, err := os.MkdirTemp("", "pgha-methods-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	archive, backup := filepath.Join(shared, "archive"), filepath.Join(shared, "backup")
	for _, d := range []string{shared, archive, backup} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(shared, "restore.sh")
	if err := os.WriteFile(script, []byte(restoreScript), 0o755); err != nil {
		t.Fatal(err)
	}
	c, w := start(t, testcluster.Options{
		ExtraParameters: map[string]string{"archive_mode": "on", "archive_command": "cp %p " + archive + "/%f",
			"wal_keep_size": "16MB", "min_wal_size": "32MB", "max_wal_size": "64MB"},
		Tags: func(i int) map[string]any {
			if i == 1 {
				return map[string]any{"clonefrom": true}
			}
			return nil
		},
	})
	p := c.WaitPrimary(t, 10*time.Second)
	if p.Index == 1 {
		// The test needs the clonefrom member as a replica.
		switchTo(t, c, p, c.Nodes[0])
		p = c.Nodes[0]
	}
	var tagged, r *testcluster.Node
	for _, n := range replicasOf(c, p) {
		if n.Index == 1 {
			tagged = n
		} else if r == nil {
			r = n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A tar base backup of the primary, and its WAL in the archive.
	run := func(name string, args ...string) (string, int) {
		return runAs(t, uid, gid, r.Dir, name, args...)
	}
	if out, code := run(filepath.Join(pgBin(), "pg_basebackup"), "-h", p.Dir, "-p", strconv.Itoa(p.PGPort), "-U", "postgres", "-D", backup, "-Ft", "-X", "none", "-c", "fast"); code != 0 {
		t.Fatalf("pg_basebackup -Ft: exit %d: %s", code, out)
	}
	if err := p.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}

	// The node becomes a new replica made by the methods.
	w.Mark("re-create " + r.Name + " by the methods")
	r.Stop(t, syscall.SIGTERM)
	if err := os.RemoveAll(r.DataDir); err != nil {
		t.Fatal(err)
	}
	editYAML(t, r, func(doc map[string]any) {
		pg := doc["postgresql"].(map[string]any)
		pg["create_replica_methods"] = []any{"restore", "basebackup"}
		pg["restore"] = map[string]any{"command": script, "backup": backup, "archive": archive}
	})
	r.Start(t)
	c.WaitReplicasStreaming(t, 45*time.Second)
	for _, want := range []string{`"method":"restore"`, "first attempt fails on purpose", `"method":"basebackup","source":"` + tagged.Name + `"`,
		`"method":"basebackup","percent":100,`} {
		if !r.LogContains(testcluster.Bootstrap, want) {
			t.Errorf("%s's pg-bootstrap log lacks %s: the restore method should fail once and basebackup copy %s", r.Name, want, tagged.Name)
		}
	}

	// Again: now the method works (tar + archive) and the replica streams.
	out, code := pgBootstrap(t, uid, gid, r, "--rebuild", "--force")
	if code != 12 {
		t.Fatalf("pg-bootstrap --rebuild --force: exit %d, want 12 (rebuilt): %s", code, out)
	}
	c.WaitReplicasStreaming(t, 45*time.Second)
	if !r.LogContains(testcluster.Supervise, `"method":"restore"`) || !strings.Contains(superviseLog(t, r), `"re-cloned`) {
		t.Errorf("%s was not rebuilt by the restore method through pg-supervise", r.Name)
	}
	// The method's own percentages are its progress.
	if !r.LogContains(testcluster.Supervise, `"method":"restore","percent":100,`) {
		t.Errorf("%s's pg-supervise did not log the restore method's progress", r.Name)
	}
	wantOldCopies(t, r, 1)

	// Refusals change nothing.
	marker := filepath.Join(r.DataDir, "pg-ha-test-marker")
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, r.DataDir)
	out, code = pgBootstrap(t, uid, gid, p, "--rebuild")
	if code != 13 {
		t.Errorf("--rebuild on the leader: exit %d, want 13: %s", code, out)
	}
	out, code = pgBootstrap(t, uid, gid, r, "--rebuild", "--force", "--reserve", "1000000TB")
	if code != 15 || !strings.Contains(out, "not enough disk space") {
		t.Errorf("--rebuild --reserve 1000000TB: exit %d, want 15: %s", code, out)
	}
	// Two runs at once: one rebuilds, the other is refused.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	outs := make([]string, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(300 * time.Millisecond)
			}
			outs[i], codes[i], _ = runAsErr(uid, gid, r.Dir, filepath.Join(testcluster.Binaries(t), "pg-bootstrap"),
				"--config", r.ConfigPath, "--runtime-dir", r.RuntimeDir, "--log.format", "json", "--rebuild", "--force")
		}()
	}
	if _, err := os.Stat(marker); err != nil || inode(t, r.DataDir) != ino {
		t.Errorf("a refused rebuild changed the data directory (marker: %v)", err)
	}
	wg.Wait()
	if !(codes[0] == 12 && codes[1] == 14) {
		t.Errorf("two rebuilds at once: exits %v, want [12 14]:\n%s\n%s", codes, lastLine(outs[0]), lastLine(outs[1]))
	}
	c.WaitReplicasStreaming(t, 45*time.Second)
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("%s still in the data directory after a rebuild", marker)
	}
	wantOldCopies(t, r, 1)

	// pg_control removed while the node is down: pg-bootstrap copies it.
	w.Mark("rebuild " + r.Name + " without pg_control")
	r.Stop(t, syscall.SIGTERM)
	if err := os.Remove(filepath.Join(r.DataDir, "global", "pg_control")); err != nil {
		t.Fatal(err)
	}
	out, code = pgBootstrap(t, uid, gid, r, "--rebuild")
	if code != 12 {
		t.Fatalf("--rebuild without pg_control: exit %d, want 12: %s", code, out)
	}
	r.Start(t)
	c.WaitReplicasStreaming(t, 45*time.Second)
	wantOldCopies(t, r, 1)

	// The primary removed WAL the stopped replica still needs (its slot
	// dropped, segments recycled): it starts but cannot stream; the
	// rebuild goes through its pg-supervise.
	w.Mark("rebuild " + r.Name + " after the primary removed its WAL")
	var replayed string
	if err := r.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text", nil, &replayed); err != nil {
		t.Fatal(err)
	}
	r.Stop(t, syscall.SIGTERM)
	var seg string
	if err := p.QueryRow(ctx, "SELECT pg_walfile_name($1::pg_lsn)", []any{replayed}, &seg); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := p.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", r.Name); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := p.Exec(ctx, "CHECKPOINT"); err != nil {
			t.Fatal(err)
		}
		if err := p.QueryRow(ctx, "SELECT count(*)::int FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' AND substr(name, 9) <= substr($1, 9)", []any{seg}, &left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			// The archive's retention removed them too, and the backup
			// store is gone: the replica cannot fetch them there either,
			// and the restore method fails, so basebackup takes over.
			if err := os.Rename(filepath.Join(backup, "base.tar"), filepath.Join(backup, "base.tar.gone")); err != nil {
				t.Fatal(err)
			}
			for _, f := range archived(archive) {
				if filepath.Base(f)[8:] <= seg[8:] {
					os.Remove(f)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the primary still holds WAL segment %s that %s needs", seg, r.Name)
		}
		if err := p.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.Start(t)
	out, code = pgBootstrap(t, uid, gid, r, "--rebuild", "--grace", "3s")
	if code != 12 {
		t.Fatalf("--rebuild without WAL: exit %d, want 12: %s", code, out)
	}
	c.WaitReplicasStreaming(t, 45*time.Second)
	wantOldCopies(t, r, 1)
	finishLossless(t, c, w)
}

// pgBootstrap runs pg-bootstrap for n as the postgres user and returns its
// output and exit code.
func pgBootstrap(t testing.TB, uid, gid int, n *testcluster.Node, args ...string) (string, int) {
	t.Helper()
	began := time.Now()
	full := append([]string{"--config", n.ConfigPath, "--runtime-dir", n.RuntimeDir, "--log.format", "json"}, args...)
	out, code := runAs(t, uid, gid, n.Dir, filepath.Join(testcluster.Binaries(t), "pg-bootstrap"), full...)
	t.Logf("pg-bootstrap %s (%s) → exit %d in %s: %s", strings.Join(args, " "), n.Name, code, time.Since(began).Round(time.Millisecond), lastLine(out))
	return out, code
}

func runAs(t testing.TB, uid, gid int, dir, name string, args ...string) (string, int) {
	t.Helper()
	out, code, err := runAsErr(uid, gid, dir, name, args...)
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return out, code
}

func runAsErr(uid, gid int, dir, name string, args ...string) (string, int, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=" + pgBin() + ":/usr/bin:/bin", "LANG=C.UTF-8", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode(), nil
	}
	return out.String(), 0, err
}

// editYAML rewrites n's YAML through edit.
func editYAML(t testing.TB, n *testcluster.Node, edit func(doc map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if b, err = yaml.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantOldCopies checks that exactly n replaced data directories are kept
// beside n's data directory.
func wantOldCopies(t testing.TB, node *testcluster.Node, n int) {
	t.Helper()
	old, _ := filepath.Glob(node.DataDir + ".old-*")
	if len(old) != n {
		t.Errorf("%s: %d old copies of the data directory kept (%v), want %d", node.Name, len(old), old, n)
	}
	if _, err := os.Stat(node.DataDir + ".new"); err == nil {
		t.Errorf("%s: %s.new left behind", node.Name, node.DataDir)
	}
}

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// pgBin is the PostgreSQL binaries directory the cluster runs.
func pgBin() string {
	if d := os.Getenv("PGHA_PG_BIN_DIR"); d != "" {
		return d
	}
	return testcluster.PGBinDir
}

// archived lists the WAL segments in an archive directory.
func archived(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "[0-9A-F]*"))
	var out []string
	for _, f := range m {
		if len(filepath.Base(f)) == 24 {
			out = append(out, f)
		}
	}
	return out
}
