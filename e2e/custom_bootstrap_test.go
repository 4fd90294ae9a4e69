package e2e

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// pitrScript restores a tar base backup (--backup) into --datadir and logs
// its arguments. The first run fails after a partial restore, as a restore
// that runs out of disk or loses its backup store would.
const pitrScript = `#!/bin/sh
set -eu
echo "$*" >> WORK/calls.log
datadir= backup=
for a in "$@"; do
	case "$a" in
	--datadir=*) datadir=${a#--datadir=} ;;
	--backup=*) backup=${a#--backup=} ;;
	esac
done
mkdir -p "$datadir"
tar -xf "$backup" -C "$datadir"
if [ ! -e WORK/failed-once ]; then
	touch WORK/failed-once
	echo "pitr: the backup store went away" >&2
	exit 1
fi
echo "pitr: restored $backup"
`

// TestCustomBootstrapPITR: a new cluster is bootstrapped with a custom
// method (bootstrap.method: pitr) from a tar base backup of an archiving
// cluster, recovered from the WAL archive to a point in time. The first
// attempt fails: it leaves no data directory and no initialize key behind,
// and the next one succeeds. The cluster forms (one primary, two streaming
// replicas), holds exactly the rows committed before the target time,
// keeps what an application writes to it, and its replicas run with
// postgresql.recovery_conf's restore_command.
func TestCustomBootstrapPITR(t *testing.T) {
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user")
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	work, err := os.MkdirTemp("", "pgha-pitr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	archive := filepath.Join(work, "archive")
	for _, d := range []string{work, archive} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(work, "pitr.sh")
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(pitrScript, "WORK", work)), 0o755); err != nil {
		t.Fatal(err)
	}

	// The source: a cluster archiving its WAL.
	c := testcluster.Start(t, testcluster.Options{ExtraParameters: map[string]string{
		"archive_mode": "on", "archive_command": "cp %p " + archive + "/%f.tmp && mv " + archive + "/%f.tmp " + archive + "/%f"}})
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := c.WaitPrimary(t, 30*time.Second)
	exec1 := func(sql string, args ...any) {
		t.Helper()
		if err := src.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	batch := func(b int) time.Time {
		t.Helper()
		exec1("INSERT INTO pitr SELECT $1, i FROM generate_series(1, 100) i", b)
		var at time.Time
		if err := src.QueryRow(ctx, "SELECT clock_timestamp()", nil, &at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	exec1("CREATE TABLE pitr (batch int NOT NULL, i int NOT NULL)")
	batch(0)
	backup := filepath.Join(work, "backup")
	bb := exec.CommandContext(ctx, "runuser", "-u", "postgres", "--", testcluster.PGBinDir+"/pg_basebackup",
		"-D", backup, "-Ft", "-X", "fetch", "-c", "fast", "-h", src.Dir, "-p", strconv.Itoa(src.PGPort), "-U", "postgres")
	if out, err := bb.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v: %s", err, out)
	}
	// Batches 1 and 2 are only in the archive; the target lies between 2
	// and 3.
	batch(1)
	before := batch(2)
	time.Sleep(300 * time.Millisecond)
	var target string
	if err := src.QueryRow(ctx, "SELECT clock_timestamp()::text", nil, &target); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	after := batch(3)
	batch(4)
	t.Logf("batches 0-2 committed by %s, target %s, batch 3 at %s", before.Format(time.RFC3339Nano), target, after.Format(time.RFC3339Nano))
	srcTL, err := src.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lastWAL string
	if err := src.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())", nil, &lastWAL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "archived "+lastWAL, func() bool {
		_, err := os.Stat(filepath.Join(archive, lastWAL))
		return err == nil
	})

	// The same nodes become a new cluster: no processes, no data
	// directories, no keys; every node's YAML restores with the pitr method.
	for _, n := range c.Nodes {
		n.KillAll()
		if err := os.RemoveAll(n.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Delete(ctx, c.Key(""), clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	restore := "cp " + archive + "/%f %p"
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		boot := doc["bootstrap"].(map[string]any)
		boot["method"] = "pitr"
		boot["pitr"] = map[string]any{
			"command": script,
			"backup":  filepath.Join(backup, "base.tar"),
			"recovery_conf": map[string]any{
				"restore_command":        restore,
				"recovery_target_time":   target,
				"recovery_target_action": "promote",
			},
		}
		pgs := doc["postgresql"].(map[string]any)
		pgs["recovery_conf"] = map[string]any{"restore_command": restore}
		pgs["parameters"].(map[string]any)["archive_mode"] = "off"
		if b, err = yaml.Marshal(doc); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.ConfigPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The first attempt fails in the middle of the restore.
	n1 := c.Nodes[0]
	bctx, bcancel := context.WithTimeout(ctx, 60*time.Second)
	cmd := exec.CommandContext(bctx, filepath.Join(testcluster.Binaries(t), "pg-bootstrap"), "--config", n1.ConfigPath,
		"--runtime-dir", n1.RuntimeDir, "--timeout", "5s")
	cmd.Dir, cmd.Env = n1.Dir, []string{"HOME=" + n1.Dir, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true}
	out, err := cmd.CombinedOutput()
	bcancel()
	if err == nil {
		t.Fatalf("the first pg-bootstrap succeeded although the method failed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(work, "failed-once")); err != nil {
		t.Fatalf("the method never ran (%v); pg-bootstrap said:\n%s", err, out)
	}
	if !strings.Contains(string(out), "bootstrap.pitr") || !strings.Contains(string(out), "the backup store went away") {
		t.Errorf("pg-bootstrap's error does not name the method and its output:\n%s", out)
	}
	if _, err := os.Stat(n1.DataDir); !os.IsNotExist(err) {
		t.Errorf("the failed restore left %s behind (%v)", n1.DataDir, err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(n1.DataDir), ".*incomplete*")); len(m) > 0 {
		t.Errorf("the failed restore left its marker: %v", m)
	}
	if v, err := c.Get(ctx, c.Key("initialize")); err != nil || v != "" {
		t.Errorf("initialize key %q (%v) after the failed attempt, want none", v, err)
	}
	t.Logf("first attempt failed as planned: %s", lastLine(string(out)))

	// The next attempt succeeds and the cluster forms.
	restarted := time.Now()
	for _, n := range c.Nodes {
		n.Start(t)
	}
	p := c.WaitPrimary(t, 60*time.Second)
	c.WaitReplicasStreaming(t, 60*time.Second)
	t.Logf("restored cluster formed in %s; primary %s", time.Since(restarted).Round(time.Millisecond), p.Name)
	w := testcluster.StartWorkload(t, c)
	time.Sleep(warmUp)

	counts := map[int]int{}
	conn, err := p.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT batch, count(*) FROM pitr GROUP BY batch")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b, n int
		if err := rows.Scan(&b, &n); err != nil {
			t.Fatal(err)
		}
		counts[b] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	for b := 0; b <= 4; b++ {
		want := 100
		if b >= 3 {
			want = 0
		}
		if counts[b] != want {
			t.Errorf("batch %d: %d rows on the restored primary, want %d (target %s)", b, counts[b], want, target)
		}
	}
	// Recovery ends with a promotion to a new timeline (and pg-supervise
	// promotes once more, as after initdb).
	if tl, err := p.Timeline(ctx); err != nil || tl <= srcTL {
		t.Errorf("restored primary on timeline %d (%v), want one after the source's %d", tl, err, srcTL)
	}
	calls, _ := os.ReadFile(filepath.Join(work, "calls.log"))
	wantArgs := "--scope=" + c.Scope + " --datadir=" + n1.DataDir + " --backup=" + filepath.Join(backup, "base.tar")
	if got := strings.Split(strings.TrimSpace(string(calls)), "\n"); len(got) != 2 || got[0] != wantArgs || got[1] != wantArgs {
		t.Errorf("method runs %q, want two with %q", got, wantArgs)
	}
	for _, n := range c.Nodes {
		var rc string
		if err := n.QueryRow(ctx, "SHOW restore_command", nil, &rc); err != nil {
			t.Errorf("%s: %v", n.Name, err)
			continue
		}
		want := restore
		if n == p {
			want = ""
		}
		if rc != want {
			t.Errorf("%s: restore_command %q, want %q", n.Name, rc, want)
		}
	}
	finishWith(t, c, w)
	t.Logf("test body took %s", time.Since(began).Round(time.Millisecond))
}
