package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The container's root file system: Debian bookworm with systemd and the
// packages a pg-ha node needs, built once with mmdebstrap and kept in
// $PGHA_ROOTFS_CACHE (default /var/cache/pg-ha-test). The tree is named
// after a hash of everything that goes into it, so a changed list builds a
// new tree. It is never written to after the build: containers boot it
// with --volatile=overlay, every change going to a tmpfs.

const defaultRootfsCache = "/var/cache/pg-ha-test"

var (
	rootfsSuite    = "bookworm"
	rootfsPackages = []string{
		"systemd", "systemd-sysv", "dbus", "postgresql-15", "etcd-server", "etcd-client",
		"haproxy", "curl", "iproute2", "make", "procps", "sudo",
	}
	// Debian's own services of those packages would take the host's ports
	// (the container shares the host's network) and are not pg-ha's.
	rootfsMasked = []string{"etcd.service", "postgresql.service", "postgresql@15-main.service", "haproxy.service"}
)

// rootfsFormat changes whenever what is done to the tree after mmdebstrap
// changes, so that old caches are not reused.
const rootfsFormat = "1"

func rootfsKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", rootfsFormat, rootfsSuite,
		strings.Join(rootfsPackages, ","), strings.Join(rootfsMasked, ","))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// rootfs returns the cached tree, building it first if it is missing. A
// flock on <cache>/.lock serializes builders; the tree is built in a
// temporary directory beside its final name and renamed into place, so a
// tree under its final name is always complete.
func rootfs(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("PGHA_ROOTFS_CACHE")
	if cache == "" {
		cache = defaultRootfsCache
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(cache, rootfsSuite+"-"+rootfsKey())
	if ok, err := isDir(final); err != nil {
		t.Fatal(err)
	} else if ok {
		return final
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ok, _ := isDir(final); ok {
		return final // another process built it meanwhile
	}
	// Remains of a build that was interrupted: nobody else builds now.
	old, _ := filepath.Glob(filepath.Join(cache, ".build-*"))
	for _, d := range old {
		os.RemoveAll(d)
	}
	tmp := filepath.Join(cache, fmt.Sprintf(".build-%s-%d", rootfsKey(), os.Getpid()))
	began := time.Now()
	args := []string{"--variant=apt", "--include=" + strings.Join(rootfsPackages, ","), rootfsSuite, tmp}
	// One retry: a mirror's passing failure should not fail the tier.
	for attempt := 1; ; attempt++ {
		out, err := exec.Command("mmdebstrap", args...).CombinedOutput()
		if err == nil {
			break
		}
		os.RemoveAll(tmp)
		if attempt == 2 {
			t.Fatalf("mmdebstrap %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 4000))
		}
		t.Logf("mmdebstrap failed, trying again: %v\n%s", err, tail(string(out), 1000))
	}
	mask := append([]string{"--root=" + tmp, "mask"}, rootfsMasked...)
	if out, err := exec.Command("systemctl", mask...).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("systemctl %s: %v\n%s", strings.Join(mask, " "), err, out)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		t.Fatal(err)
	}
	t.Logf("built %s in %s", final, time.Since(began).Round(time.Second))
	// Trees of earlier package lists are not used any more.
	others, _ := filepath.Glob(filepath.Join(cache, rootfsSuite+"-*"))
	for _, d := range others {
		if d != final {
			t.Logf("removing the outdated tree %s", d)
			os.RemoveAll(d)
		}
	}
	return final
}

func isDir(p string) (bool, error) {
	fi, err := os.Stat(p)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
