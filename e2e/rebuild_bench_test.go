package e2e

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// BenchmarkRebuild compares `pg-bootstrap --rebuild --force` of a replica
// with a plain pg_basebackup of the same primary into a fresh directory, on
// the same machine, alternating. The database is pgbench's at scale
// PGHA_BENCH_SCALE (default 130, about 2 GB). The rebuild's time runs from
// the command's start to its exit 12: the copy beside the old directory,
// the trial start that proves it, the swap, and the replica started again by
// pg-supervise. Reported: the mean seconds of each and their ratio.
//
//	PGHA_TEST_DISALLOW_SKIP=1 go test ./e2e -run '^$' -bench Rebuild -benchtime 3x -timeout 60m -v
func BenchmarkRebuild(b *testing.B) {
	scale := 130
	if s, err := strconv.Atoi(os.Getenv("PGHA_BENCH_SCALE")); err == nil && s > 0 {
		scale = s
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		b.Fatal(err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	c := testcluster.Start(b, testcluster.Options{Nodes: 2})
	defer c.Close()
	p := c.WaitPrimary(b, 10*time.Second)
	r := replicasOf(c, p)[0]
	began := time.Now()
	if out, code := runAs(b, uid, gid, p.Dir, filepath.Join(pgBin(), "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", p.Dir, "-p", strconv.Itoa(p.PGPort), "-U", "postgres", "postgres"); code != 0 {
		b.Fatalf("pgbench -i: exit %d: %s", code, out)
	}
	var size int64
	if err := p.QueryRow(b.Context(), "SELECT pg_database_size('postgres')", nil, &size); err != nil {
		b.Fatal(err)
	}
	b.Logf("pgbench -i -s %d: %.2f GB in %s", scale, float64(size)/1e9, time.Since(began).Round(time.Second))
	c.WaitReplicasCaughtUp(b, 5*time.Minute)
	plainDir := filepath.Join(p.Dir, "..", "plain-copy")
	var plain, rebuild time.Duration
	b.ResetTimer()
	for i := range b.N {
		runPlain := func() {
			os.RemoveAll(plainDir)
			if err := os.MkdirAll(plainDir, 0o700); err != nil {
				b.Fatal(err)
			}
			os.Chown(plainDir, uid, gid)
			t0 := time.Now()
			out, code := runAs(b, uid, gid, p.Dir, filepath.Join(pgBin(), "pg_basebackup"), "-h", p.Dir, "-p", strconv.Itoa(p.PGPort),
				"-U", "postgres", "-D", plainDir, "-X", "stream", "-c", "fast")
			d := time.Since(t0)
			if code != 0 {
				b.Fatalf("pg_basebackup: exit %d: %s", code, out)
			}
			os.RemoveAll(plainDir)
			b.Logf("pg_basebackup: %.1f s", d.Seconds())
			plain += d
		}
		runRebuild := func() {
			t0 := time.Now()
			out, code := pgBootstrap(b, uid, gid, r, "--rebuild", "--force", "--keep", "0")
			d := time.Since(t0)
			if code != 12 {
				b.Fatalf("pg-bootstrap --rebuild --force: exit %d: %s", code, out)
			}
			b.Logf("pg-bootstrap --rebuild: %.1f s", d.Seconds())
			rebuild += d
			c.WaitReplicasStreaming(b, time.Minute)
		}
		if i%2 == 0 {
			runPlain()
			runRebuild()
		} else {
			runRebuild()
			runPlain()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(plain.Seconds()/n, "basebackup-s")
	b.ReportMetric(rebuild.Seconds()/n, "rebuild-s")
	b.ReportMetric(rebuild.Seconds()/plain.Seconds(), "ratio")
}
