package pg

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// newSegment creates a private System V segment under a key of its own and
// writes a postmaster.pid naming it into a new directory, as a server does.
func newSegment(t *testing.T) (dir string, key, id int) {
	t.Helper()
	for key = 0x7a000000 + os.Getpid()%0x10000*16; ; key++ {
		var err error
		id, err = unix.SysvShmGet(key, 56, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
		if err == nil {
			break
		}
		if err != unix.EEXIST {
			t.Fatalf("shmget: %v", err)
		}
	}
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
	dir = t.TempDir()
	pid := fmt.Sprintf("4242\n%s\n1700000000\n5432\n/tmp\n*\n%9d %9d\nready   \n", dir, key, id)
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, key, id
}

func segmentExists(id int) bool {
	var d unix.SysvShmDesc
	_, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d)
	return err == nil
}

func TestRemoveSegmentDetached(t *testing.T) {
	dir, _, id := newSegment(t)
	removed, err := RemoveSegment(dir)
	if err != nil || !removed {
		t.Fatalf("RemoveSegment = %v, %v; want true, nil", removed, err)
	}
	if segmentExists(id) {
		t.Fatal("segment still exists")
	}
	if removed, err := RemoveSegment(dir); err != nil || removed {
		t.Fatalf("second RemoveSegment = %v, %v; want false, nil", removed, err)
	}
}

func TestRemoveSegmentLeavesAttached(t *testing.T) {
	dir, _, id := newSegment(t)
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatalf("shmat: %v", err)
	}
	defer unix.SysvShmDetach(mem)
	if removed, err := RemoveSegment(dir); err != nil || removed {
		t.Fatalf("RemoveSegment = %v, %v; want false, nil", removed, err)
	}
	if !segmentExists(id) {
		t.Fatal("attached segment was removed")
	}
}

func TestRemoveSegmentLeavesOtherKey(t *testing.T) {
	dir, key, id := newSegment(t)
	pid := fmt.Sprintf("4242\n%s\n1700000000\n5432\n/tmp\n*\n%9d %9d\nready   \n", dir, key+1, id)
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	if removed, err := RemoveSegment(dir); err != nil || removed {
		t.Fatalf("RemoveSegment = %v, %v; want false, nil", removed, err)
	}
	if !segmentExists(id) {
		t.Fatal("a segment under another key was removed")
	}
}

func TestRemoveSegmentNoPidFile(t *testing.T) {
	for _, content := range []string{"", "4242\n/data\n", "4242\n/d\n1\n5432\n/tmp\n*\n  garbage\n"} {
		dir := t.TempDir()
		if content != "" {
			os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(content), 0o600)
		}
		if removed, err := RemoveSegment(dir); err != nil || removed {
			t.Fatalf("%q: RemoveSegment = %v, %v; want false, nil", content, removed, err)
		}
	}
}
