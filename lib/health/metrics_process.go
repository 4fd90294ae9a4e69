package health

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runtimeSamples are the runtime/metrics the go_* families are computed
// from, read together so that they are mutually consistent.
var runtimeSamples = struct {
	sync.Mutex
	s []metrics.Sample
}{s: func() []metrics.Sample {
	names := []string{
		"/gc/heap/tiny/allocs:objects", "/gc/heap/allocs:objects", "/gc/heap/frees:objects",
		"/gc/heap/allocs:bytes", "/gc/heap/objects:objects", "/gc/heap/goal:bytes",
		"/memory/classes/total:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/released:bytes", "/memory/classes/heap/free:bytes", "/memory/classes/heap/stacks:bytes",
		"/memory/classes/os-stacks:bytes", "/memory/classes/metadata/mspan/inuse:bytes",
		"/memory/classes/metadata/mspan/free:bytes", "/memory/classes/metadata/mcache/inuse:bytes",
		"/memory/classes/metadata/mcache/free:bytes", "/memory/classes/profiling/buckets:bytes",
		"/memory/classes/metadata/other:bytes", "/memory/classes/other:bytes",
		"/gc/gogc:percent", "/gc/gomemlimit:bytes", "/sched/gomaxprocs:threads",
	}
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	return s
}()}

// collectRuntime adds the go_* families the Prometheus Go client's default
// Go collector exports, with its names, help texts and types.
func collectRuntime(e *exposition) {
	e.gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	threads, _ := runtime.ThreadCreateProfile(nil)
	e.gauge("go_threads", "Number of OS threads created.", float64(threads))

	var gc debug.GCStats
	gc.PauseQuantiles = make([]time.Duration, 5)
	debug.ReadGCStats(&gc)
	const gcHelp = "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles."
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		e.add("go_gc_duration_seconds", gcHelp, typeSummary, "", label("quantile", q), gc.PauseQuantiles[i].Seconds())
	}
	e.add("go_gc_duration_seconds", gcHelp, typeSummary, "_sum", "", gc.PauseTotal.Seconds())
	e.add("go_gc_duration_seconds", gcHelp, typeSummary, "_count", "", float64(gc.NumGC))
	e.gauge("go_memstats_last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection.",
		float64(gc.LastGC.UnixNano())/1e9)
	e.add("go_info", "Information about the Go environment.", typeGauge, "", label("version", runtime.Version()), 1)

	runtimeSamples.Lock()
	defer runtimeSamples.Unlock()
	rm := runtimeSamples.s
	metrics.Read(rm)
	v := func(name string) float64 {
		for _, s := range rm {
			if s.Name == name {
				switch s.Value.Kind() {
				case metrics.KindUint64:
					return float64(s.Value.Uint64())
				case metrics.KindFloat64:
					return s.Value.Float64()
				}
			}
		}
		return 0
	}
	e.gauge("go_gc_gogc_percent", "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.",
		v("/gc/gogc:percent"))
	e.gauge("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.",
		v("/gc/gomemlimit:bytes"))
	e.gauge("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.",
		v("/sched/gomaxprocs:threads"))

	tiny := v("/gc/heap/tiny/allocs:objects")
	heapObjects := v("/memory/classes/heap/objects:bytes")
	heapInuse := heapObjects + v("/memory/classes/heap/unused:bytes")
	released := v("/memory/classes/heap/released:bytes")
	heapIdle := released + v("/memory/classes/heap/free:bytes")
	stackInuse := v("/memory/classes/heap/stacks:bytes")
	mspanInuse := v("/memory/classes/metadata/mspan/inuse:bytes")
	mcacheInuse := v("/memory/classes/metadata/mcache/inuse:bytes")
	for _, m := range []struct {
		name, help string
		counter    bool
		v          float64
	}{
		{"alloc_bytes", "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.", false, heapObjects},
		{"alloc_bytes_total", "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.", true, v("/gc/heap/allocs:bytes")},
		{"sys_bytes", "Number of bytes obtained from system. Equals to /memory/classes/total:byte.", false, v("/memory/classes/total:bytes")},
		{"mallocs_total", "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.", true, v("/gc/heap/allocs:objects") + tiny},
		{"frees_total", "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.", true, v("/gc/heap/frees:objects") + tiny},
		{"heap_alloc_bytes", "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.", false, heapObjects},
		{"heap_sys_bytes", "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", false, heapInuse + heapIdle},
		{"heap_idle_bytes", "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.", false, heapIdle},
		{"heap_inuse_bytes", "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes", false, heapInuse},
		{"heap_released_bytes", "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.", false, released},
		{"heap_objects", "Number of currently allocated objects. Equals to /gc/heap/objects:objects.", false, v("/gc/heap/objects:objects")},
		{"stack_inuse_bytes", "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.", false, stackInuse},
		{"stack_sys_bytes", "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.", false, stackInuse + v("/memory/classes/os-stacks:bytes")},
		{"mspan_inuse_bytes", "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.", false, mspanInuse},
		{"mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.", false, mspanInuse + v("/memory/classes/metadata/mspan/free:bytes")},
		{"mcache_inuse_bytes", "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.", false, mcacheInuse},
		{"mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.", false, mcacheInuse + v("/memory/classes/metadata/mcache/free:bytes")},
		{"buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.", false, v("/memory/classes/profiling/buckets:bytes")},
		{"gc_sys_bytes", "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.", false, v("/memory/classes/metadata/other:bytes")},
		{"other_sys_bytes", "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.", false, v("/memory/classes/other:bytes")},
		{"next_gc_bytes", "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.", false, v("/gc/heap/goal:bytes")},
	} {
		if m.counter {
			e.counter("go_memstats_"+m.name, m.help, m.v)
		} else {
			e.gauge("go_memstats_"+m.name, m.help, m.v)
		}
	}
}

// userHZ is the unit of the CPU times in /proc/PID/stat.
const userHZ = 100

// collectProcess adds the process_* families the Prometheus Go client's
// process collector exports on Linux, read from /proc/self. A file that
// cannot be read is logged and its families are left out.
func (s *Service) collectProcess(e *exposition) {
	if stat, err := os.ReadFile("/proc/self/stat"); err != nil {
		s.log.Warn().Err(err).Msg("metrics: read process stat")
	} else if f, err := parseProcStat(stat); err != nil {
		s.log.Warn().Err(err).Msg("metrics: parse /proc/self/stat")
	} else {
		e.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", float64(f.utime+f.stime)/userHZ)
		e.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", float64(f.vsize))
		e.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", float64(f.rss*int64(os.Getpagesize())))
		if boot, err := bootTime(); err != nil {
			s.log.Warn().Err(err).Msg("metrics: read boot time")
		} else {
			e.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", float64(boot)+float64(f.starttime)/userHZ)
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err != nil {
		s.log.Warn().Err(err).Msg("metrics: read open file descriptors")
	} else {
		// ReadDir's own descriptor is closed again: not counted.
		e.gauge("process_open_fds", "Number of open file descriptors.", float64(len(fds)))
	}
	if lim, err := os.ReadFile("/proc/self/limits"); err != nil {
		s.log.Warn().Err(err).Msg("metrics: read limits")
	} else {
		e.gauge("process_max_fds", "Maximum number of open file descriptors.", softLimit(lim, "Max open files"))
		e.gauge("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", softLimit(lim, "Max address space"))
	}
	if ns, err := os.ReadFile("/proc/self/net/netstat"); err != nil {
		s.log.Warn().Err(err).Msg("metrics: read netstat")
	} else {
		in, out := ipExtOctets(ns)
		e.counter("process_network_receive_bytes_total", "Number of bytes received by the process over the network.", in)
		e.counter("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network.", out)
	}
}

// procStat is what collectProcess needs of /proc/PID/stat.
type procStat struct {
	utime, stime, starttime uint64
	vsize                   uint64
	rss                     int64
}

// parseProcStat parses /proc/PID/stat (proc(5)); the command name in
// parentheses may contain spaces and parentheses.
func parseProcStat(b []byte) (procStat, error) {
	var p procStat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return p, errors.New("no command name")
	}
	// Fields from the state (field 3) on.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return p, fmt.Errorf("%d fields after the command name, want 22 or more", len(f))
	}
	var err error
	parse := func(s string) uint64 {
		n, e := strconv.ParseUint(s, 10, 64)
		if e != nil && err == nil {
			err = e
		}
		return n
	}
	p.utime, p.stime = parse(f[11]), parse(f[12])
	p.starttime = parse(f[19])
	p.vsize = parse(f[20])
	rss, e := strconv.ParseInt(f[21], 10, 64)
	if e != nil && err == nil {
		err = e
	}
	p.rss = rss
	return p, err
}

var bootOnce struct {
	sync.Once
	t   uint64
	err error
}

// bootTime is the btime line of /proc/stat, read once.
func bootTime() (uint64, error) {
	bootOnce.Do(func() {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			bootOnce.err = err
			return
		}
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "btime "); ok {
				bootOnce.t, bootOnce.err = strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
				return
			}
		}
		bootOnce.err = errors.New("/proc/stat: no btime")
	})
	return bootOnce.t, bootOnce.err
}

// softLimit is the soft limit of the row named name in /proc/PID/limits;
// unlimited is the largest uint64, as the Prometheus Go client reports it.
func softLimit(limits []byte, name string) float64 {
	for line := range strings.Lines(string(limits)) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		if f[0] == "unlimited" {
			return math.MaxUint64
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return float64(n)
	}
	return 0
}

// ipExtOctets are InOctets and OutOctets of the IpExt section of
// /proc/PID/net/netstat (a header line of names, then a line of values).
func ipExtOctets(netstat []byte) (in, out float64) {
	var names []string
	for line := range strings.Lines(string(netstat)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "IpExt:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i := 1; i < len(f) && i < len(names); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch names[i] {
			case "InOctets":
				in = v
			case "OutOctets":
				out = v
			}
		}
		break
	}
	return in, out
}
