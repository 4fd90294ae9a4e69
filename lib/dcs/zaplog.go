package dcs

import (
	"github.com/rs/zerolog"
	"go.uber.org/zap/zapcore"
)

// zapCore hands the etcd client's zap logs to zerolog: errors as warnings,
// everything else (including the client's per-retry warnings, which every
// caller also sees as a returned error) at debug level.
type zapCore struct {
	log    zerolog.Logger
	fields []zapcore.Field
}

func level(l zapcore.Level) zerolog.Level {
	if l >= zapcore.ErrorLevel {
		return zerolog.WarnLevel
	}
	return zerolog.DebugLevel
}

func (z zapCore) Enabled(l zapcore.Level) bool {
	lv := level(l)
	return lv >= z.log.GetLevel() && lv >= zerolog.GlobalLevel()
}

func (z zapCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(z.fields)+len(fields))
	all = append(append(all, z.fields...), fields...)
	return zapCore{log: z.log, fields: all}
}

func (z zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if z.Enabled(e.Level) {
		return ce.AddCore(e, z)
	}
	return ce
}

func (z zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range z.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	z.log.WithLevel(level(e.Level)).Fields(enc.Fields).Msg(e.Message)
	return nil
}

func (zapCore) Sync() error { return nil }
