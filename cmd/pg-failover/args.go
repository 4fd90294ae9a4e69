package main

// flagsWithValue are the global flags whose value is the next argument.
var flagsWithValue = map[string]bool{"-c": true, "--config": true, "--log.level": true, "--log.format": true}

// patronictlArgs rewrites patronictl query's -c SQL, which follows the
// command, to --command SQL: before the command -c stays --config, as in
// patronictl. Everything else is passed through.
func patronictlArgs(args []string) []string {
	out := make([]string, 0, len(args))
	inQuery := false
	for i, a := range args {
		switch {
		case inQuery && a == "-c":
			a = "--command"
		case !inQuery && a == "query" && (i == 0 || !flagsWithValue[args[i-1]]):
			inQuery = true
		}
		out = append(out, a)
	}
	return out
}
