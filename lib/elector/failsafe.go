package elector

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Failsafe mode (failsafe_mode: true), as in Patroni: a leader cut off
// from etcd keeps its primary running as long as every other member listed
// in the failsafe key answers POST /failsafe — and by answering, promises
// to take no leader key for ttl from when it got the request (pg-healthd
// records the promise; maybeRace honours it). The leader counts a round
// only when every answer came back before its deadline in force, so each
// promise began before the leader key could expire (the first round: the
// lease-derived deadline ends before the server expires the lease) or
// while the previous promise still held. It then may lead until the
// round's send time plus ttl, less the fence margin: no listed member can
// take the key before then, and a member not listed never takes it while
// the failsafe key exists. Any member not answering 200 means no new
// validity: the primary is fenced at the deadline it has, as without
// failsafe mode.

// failsafeRound is how long one round may take at most, and failsafeTick
// how often the round goroutine looks at the lease.
const (
	failsafeRound = 2 * time.Second
	failsafeTick  = 100 * time.Millisecond
)

// failsafeState is shared between the main loop and the round goroutine;
// guarded by ka.mu.
type failsafeState struct {
	// ask are the members to ask (name → api_url; self excluded), nil
	// when failsafe mode is off or no failsafe key was seen: no rounds.
	ask map[string]string
	// until is the validity the last successful round won (its send
	// time plus ttl), 0 for none.
	until clock.Time
	// lastSent is when the last round was sent.
	lastSent clock.Time
	// failed is the member that failed the last round ("" if it passed).
	failed string
}

// failsafeKeyOps are the leader's writes of the failsafe key: every member
// with an api_url, itself included, while failsafe_mode is on; the key is
// deleted when it is off. The members asked during an outage are those the
// key held when last read plus those of the last write, whose outcome may
// be unknown (setFailsafeAsk).
func (e *Elector) failsafeKeyOps(cl *dcs.Cluster) []clientOp {
	if !e.dyn.FailsafeMode {
		e.fsWritten = nil
		if cl.Failsafe != nil {
			return []clientOp{dcs.OpDeleteFailsafe(e.dcs)}
		}
		return nil
	}
	want := map[string]string{e.cfg.Name: e.cfg.APIURL()}
	for _, m := range cl.Members {
		if m.Data.APIURL != "" {
			want[m.Name] = m.Data.APIURL
		}
	}
	if maps.Equal(want, cl.Failsafe) {
		return nil
	}
	// Ask the members of the write from now on, whether or not it lands:
	// if it does, they see themselves listed and may otherwise race.
	e.fsWritten = want
	e.setFailsafeAsk(cl)
	return []clientOp{dcs.OpPutFailsafe(e.dcs, want)}
}

// setFailsafeAsk hands the round goroutine the members to ask, from the
// failsafe key as just read and the last write not yet seen in it.
func (e *Elector) setFailsafeAsk(cl *dcs.Cluster) {
	var ask map[string]string
	if e.dyn.FailsafeMode && cl.Failsafe != nil {
		if maps.Equal(cl.Failsafe, e.fsWritten) {
			e.fsWritten = nil
		}
		ask = map[string]string{}
		maps.Copy(ask, e.fsWritten)
		maps.Copy(ask, cl.Failsafe)
		delete(ask, e.cfg.Name)
	}
	e.ka.mu.Lock()
	e.ka.fs.ask = ask
	e.ka.mu.Unlock()
}

// failsafeBlocks says why this node may not take the free leader key now
// because of failsafe mode ("" if it may): it promised a leader cut off
// from etcd not to (pg-healthd's record; an unreadable record counts as a
// promise), the failsafe key exists and does not list it, or pg-lockd
// started less than ttl ago while the key exists (a promise recorded
// before a reboot would be lost with the runtime directory).
func (e *Elector) failsafeBlocks(cl *dcs.Cluster) string {
	now := e.clock.Now()
	f, err := state.ReadFailsafe(e.node.RuntimeDir)
	switch {
	case err != nil && !errors.Is(err, state.ErrNotExist):
		return "failsafe: cannot read the promise file (" + err.Error() + "); remove it once no leader is cut off from etcd"
	case err == nil && f.Leader != e.cfg.Name && f.Active(now):
		return "failsafe: promised " + f.Leader + ", cut off from etcd, not to take the key for another " +
			f.Until.Sub(now).Round(100*time.Millisecond).String()
	}
	if len(cl.Failsafe) > 0 {
		if _, listed := cl.Failsafe[e.cfg.Name]; !listed {
			return "failsafe: not listed in the failsafe key, so the leader cut off from etcd did not ask this node"
		}
		if e.started != 0 && now.Sub(e.started) < e.dyn.TTL {
			return "failsafe: started less than ttl ago; a promise given before a reboot is not recorded"
		}
	}
	return ""
}

// failsafeRounds runs rounds until ctx is done: while this node leads with
// the lease not renewing and failsafe armed, one round per loop_wait, and
// at once when the last one failed.
func (e *Elector) failsafeRounds(ctx context.Context) {
	t := time.NewTimer(failsafeTick)
	defer t.Stop()
	var api *clusterctl.Ctl
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(failsafeTick)
		e.ka.mu.Lock()
		ln, held, failing, lost, fs, loopWait, ttl := e.ka.line, e.ka.held, e.ka.failing, e.ka.lost, e.ka.fs, e.ka.loopWait, e.ka.ttl
		e.ka.mu.Unlock()
		now := e.clock.Now()
		leading := ln.Verb == rolepipe.Lead && ln.Token != 0 && ln.Token == held && now.Before(ln.Until)
		if !leading || fs.ask == nil || !(failing || lost) {
			continue
		}
		if fs.failed == "" && now.Sub(fs.lastSent) < loopWait {
			continue
		}
		if api == nil {
			api = &clusterctl.Ctl{Cfg: e.cfg, Log: e.log}
		}
		e.failsafeRound(ctx, api, fs.ask, ttl, ln.Until)
	}
}

// failsafeRound asks every member in ask once and, if all accepted before
// the deadline in force, extends the lead line in force to the round's
// send time plus ttl, less the fence margin.
func (e *Elector) failsafeRound(ctx context.Context, api *clusterctl.Ctl, ask map[string]string, ttl time.Duration, deadline clock.Time) {
	sent := e.clock.Now()
	rctx, cancel := context.WithTimeout(ctx, min(failsafeRound, deadline.Sub(sent)))
	defer cancel()
	body := map[string]any{"name": e.cfg.Name, "conn_url": e.cfg.ConnURL(), "api_url": e.cfg.APIURL(), "ttl": ttl.Seconds()}
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for _, name := range slices.Sorted(maps.Keys(ask)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &dcs.Member{Name: name, Data: dcs.MemberData{APIURL: ask[name]}}
			a, err := api.CallMember(rctx, m, http.MethodPost, "/failsafe", body)
			if err == nil && a.Status == http.StatusOK {
				return
			}
			why := name
			if err != nil {
				why += ": " + err.Error()
			} else {
				why += ": " + http.StatusText(a.Status) + " " + a.Body
			}
			mu.Lock()
			failed = append(failed, why)
			mu.Unlock()
		}()
	}
	wg.Wait()
	done := e.clock.Now()

	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	e.ka.fs.lastSent = sent
	if len(failed) > 0 || !done.Before(e.ka.untilLocked()) {
		slices.Sort(failed)
		why := "answers came back after the deadline"
		if len(failed) > 0 {
			why = failed[0]
		}
		if e.ka.fs.failed != why {
			e.log.Warn().Str("member", why).Int("failed", len(failed)).
				Msg("failsafe: not every member accepted; the primary is fenced at its deadline unless etcd answers")
		}
		e.ka.fs.failed = why
		return
	}
	if e.ka.fs.until == 0 || e.ka.fs.failed != "" {
		e.log.Warn().Int("members", len(ask)).Dur("round", done.Sub(sent)).
			Msg("failsafe: etcd unreachable, every member accepted: the primary keeps running")
	}
	e.ka.fs.failed = ""
	e.ka.fs.until = max(e.ka.fs.until, sent.Add(ttl))
	if ln := e.ka.line; ln.Verb == rolepipe.Lead && ln.Token != 0 && ln.Token == e.ka.held {
		if until := e.ka.untilLocked(); ln.Until.Before(until) {
			ln.Until = until
			e.ka.line = ln
			e.out.Set(ln)
		}
	}
}

// failsafeUntil is the lead deadline failsafe rounds have won, 0 for none.
// Callers hold ka.mu.
func (k *keeper) failsafeUntil() clock.Time {
	if k.fs.until == 0 {
		return 0
	}
	return k.fs.until.Add(-config.FenceMargin)
}
