package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// PatchConfig merges patch into the config key's JSON cur the way
// Patroni's PATCH /config does: a null value deletes the key, an object
// merged into an object recursively, anything else replaces the value. cur
// nil counts as {}. changed is false when nothing differs; then out is
// cur. Numbers keep their written form. It is pure.
func PatchConfig(cur []byte, patch map[string]any) (out []byte, changed bool, err error) {
	doc := map[string]any{}
	if len(bytes.TrimSpace(cur)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(cur))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil || doc == nil {
			return nil, false, fmt.Errorf("the config key is not a JSON object: %.60q", cur)
		}
	}
	if !mergePatch(doc, patch) {
		return cur, false, nil
	}
	out, err = json.Marshal(doc)
	return out, true, err
}

// mergePatch applies patch to doc in place and says whether doc changed.
func mergePatch(doc, patch map[string]any) bool {
	changed := false
	for k, v := range patch {
		old, present := doc[k]
		switch pv := v.(type) {
		case nil:
			if present {
				delete(doc, k)
				// Patroni counts deleting a null as no change.
				changed = changed || old != nil
			}
		case map[string]any:
			if om, ok := old.(map[string]any); ok {
				if mergePatch(om, pv) {
					changed = true
				}
				continue
			}
			doc[k] = v
			changed = true
		default:
			if !present || !sameJSON(old, v) {
				doc[k] = v
				changed = true
			}
		}
	}
	return changed
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// patchConfig serves PATCH /config: the body is merged into the config key
// (PatchConfig) and written back only if the key is still at the revision
// read (409 otherwise: someone changed it meanwhile). The answer is the
// resulting configuration. A cluster without a config key is 503.
func (w *Writer) patchConfig(ctx context.Context, body []byte, hasLength bool) answer {
	patch := map[string]any{}
	if code, msg := readJSONObject(body, hasLength, false, &patch); code != 0 {
		return answer{code, msg, false}
	}
	cl, err := w.o.DCS.Get(ctx)
	if err != nil {
		return etcdFailure("cannot read the cluster from etcd", err)
	}
	if cl.ConfigRev == 0 || cl.Config == nil {
		return answer{fasthttp.StatusServiceUnavailable, "the cluster has no readable config key yet", false}
	}
	out, changed, err := PatchConfig(cl.Config, patch)
	if err != nil {
		return answer{fasthttp.StatusServiceUnavailable, oneLine(err.Error()), false}
	}
	if changed {
		err := w.o.DCS.PutConfig(ctx, out, cl.ConfigRev)
		switch {
		case errors.Is(err, dcs.ErrConflict):
			return answer{fasthttp.StatusConflict, "the config key changed meanwhile; nothing was written: read it and try again", false}
		case err != nil:
			return etcdFailure("cannot write the config key", err)
		}
		w.o.Log.Info().RawJSON("patch", body).Msg("config key patched")
	}
	return answer{fasthttp.StatusOK, string(out), true}
}

// putConfig serves PUT /config: the body replaces the config key, as in
// Patroni (unconditionally; 502 when the write fails). The answer is the
// body.
func (w *Writer) putConfig(ctx context.Context, body []byte, hasLength bool) answer {
	doc := map[string]any{}
	if code, msg := readJSONObject(body, hasLength, false, &doc); code != 0 {
		return answer{code, msg, false}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return answer{fasthttp.StatusBadRequest, "Bad Request: " + oneLine(err.Error()), false}
	}
	cl, err := w.o.DCS.Get(ctx)
	if err != nil {
		return etcdFailure("cannot read the cluster from etcd", err)
	}
	if cl.Config == nil || !sameConfig(cl.Config, out) {
		if err := w.o.DCS.PutConfig(ctx, out, -1); err != nil {
			return answer{fasthttp.StatusBadGateway, "cannot write the config key: " + oneLine(err.Error()), false}
		}
		w.o.Log.Info().Msg("config key replaced")
	}
	return answer{fasthttp.StatusOK, string(out), true}
}

// sameConfig compares two JSON objects regardless of key order and
// spacing.
func sameConfig(a, b []byte) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && sameJSON(x, y)
}
