package health

import (
	"bytes"
	"math"
	"testing"
)

func TestPreferGzip(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"*", false},
		{"gzip;q=0", false},
		{"identity;q=0.5, gzip;q=0.8", true},
		{"gzip;q=0.5, identity", false},
		{"br", false},
		{"GZIP", true},
	} {
		if got := preferGzip([]byte(tt.header)); got != tt.want {
			t.Errorf("preferGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestMetricsContentType(t *testing.T) {
	const prefix = "text/plain; version=0.0.4; charset=utf-8; escaping="
	for _, tt := range []struct{ accept, escaping string }{
		{"", "underscores"},
		{"text/plain", "underscores"},
		{"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1", "allow-utf-8"},
		{"text/plain;version=0.0.4;q=0.9,text/plain;escaping=dots;q=0.1", "underscores"},
		{"text/plain;escaping=bogus", "underscores"},
	} {
		if got := metricsContentType([]byte(tt.accept)); got != prefix+tt.escaping {
			t.Errorf("metricsContentType(%q) = %q, want escaping=%s", tt.accept, got, tt.escaping)
		}
	}
}

func TestExpositionFormat(t *testing.T) {
	var e exposition
	e.add("b_metric", "Help with \\ and\nnewline.", typeGauge, "", label("scope", `a"b`), 0.5)
	e.gauge("a_metric", "First.", 1)
	e.add("s", "A summary.", typeSummary, "", label("quantile", "0"), 0)
	e.add("s", "A summary.", typeSummary, "_count", "", 3)
	e.counter("c_total", "Inf.", math.Inf(1))
	var buf bytes.Buffer
	e.write(&buf)
	want := `# HELP a_metric First.
# TYPE a_metric gauge
a_metric 1
# HELP b_metric Help with \\ and\nnewline.
# TYPE b_metric gauge
b_metric{scope="a\"b"} 0.5
# HELP c_total Inf.
# TYPE c_total counter
c_total +Inf
# HELP s A summary.
# TYPE s summary
s{quantile="0"} 0
s_count 3
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestParseProcStat(t *testing.T) {
	stat := []byte("1234 (pg (he)althd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 4242 1700000000 6000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n")
	p, err := parseProcStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if p.utime != 250 || p.stime != 50 || p.starttime != 4242 || p.vsize != 1700000000 || p.rss != 6000 {
		t.Errorf("parseProcStat = %+v", p)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Error("parseProcStat(garbage): no error")
	}
}

func TestIPExtOctets(t *testing.T) {
	ns := []byte("TcpExt: A B\nTcpExt: 1 2\nIpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 123 456\n")
	if in, out := ipExtOctets(ns); in != 123 || out != 456 {
		t.Errorf("ipExtOctets = %v, %v", in, out)
	}
}
