package dcs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// TestInitializeOnLease: the initialize key won on a lease goes with the
// lease until CompleteInitialize makes it permanent, and only its owner
// can complete it.
func TestInitializeOnLease(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	ctx := ctxT(t, 30*time.Second)
	l1, l2 := grant(t, c, 10*time.Second), grant(t, c, 10*time.Second)
	if won, err := c.InitializeOnLease(ctx, l1.ID); err != nil || !won {
		t.Fatalf("first InitializeOnLease = %v, %v", won, err)
	}
	if won, err := c.InitializeOnLease(ctx, l2.ID); err != nil || won {
		t.Fatalf("second InitializeOnLease = %v, %v, want lost", won, err)
	}
	if err := c.CompleteInitialize(ctx, "42", l2.ID); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("CompleteInitialize by the loser: %v, want ErrConflict", err)
	}
	// The owner dies: its lease goes, and so does the key.
	if err := c.Revoke(ctx, l1.ID); err != nil {
		t.Fatal(err)
	}
	if cl, err := c.Get(ctx); err != nil || cl.InitializeSet {
		t.Fatalf("initialize key after its lease was revoked: %+v, %v", cl, err)
	}
	if err := c.CompleteInitialize(ctx, "42", l1.ID); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("CompleteInitialize after the lease expired: %v, want ErrConflict", err)
	}
	if won, err := c.InitializeOnLease(ctx, l2.ID); err != nil || !won {
		t.Fatalf("InitializeOnLease after the owner died = %v, %v", won, err)
	}
	if err := c.CompleteInitialize(ctx, "7001", l2.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, l2.ID); err != nil {
		t.Fatal(err)
	}
	if cl, err := c.Get(ctx); err != nil || !cl.InitializeSet || cl.Initialize != "7001" {
		t.Fatalf("initialize key after completion and revoke: %q (set %v), %v", cl.Initialize, cl.InitializeSet, err)
	}
}
