// foldtool: the cache-generation fold of overlay-fleet (see host/fold.sh, which checks the
// arguments, takes the lock and then runs `foldtool fold ...` in its place), and what a switch to
// the new generation drops from each upper (drop.go; host/lib-fold.sh's drop_folded runs it).
//
//	foldtool fold <current> <fromGen> <staging> <work> <target> <targetGen> <manifestDir>
//	              <conflictRule> <privateCSV|-> (<name> <trusted|user> <upper>)...
//	foldtool drop <manifest> <upper>
//
// Built static (CGO_ENABLED=0), standard library only. Needs Linux >= 4.x (overlayfs, SEEK_DATA).
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	out       = bufio.NewWriter(os.Stdout)
	cleanupMu sync.Mutex
	cleanupFn func()
)

// die reports like of_die (host/lib.sh) after removing what this run created.
func die(format string, args ...any) {
	out.Flush()
	fmt.Fprintf(os.Stderr, "overlay-fleet: "+format+"\n", args...)
	runCleanup()
	os.Exit(1)
}

func runCleanup() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	if cleanupFn != nil {
		cleanupFn()
		cleanupFn = nil
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: foldtool fold <current> <fromGen> <staging> <work> <target> <targetGen> <manifestDir> <conflictRule> <privateCSV|-> (<name> <trusted|user> <upper>)... | foldtool drop <manifest> <upper>")
	os.Exit(2)
}

func main() {
	a := os.Args[1:]
	if len(a) > 0 && a[0] == "drop" {
		dropMain(a[1:])
		out.Flush()
		return
	}
	if len(a) < 13 || a[0] != "fold" || (len(a)-10)%3 != 0 {
		usage()
	}
	f := &folder{
		current: a[1], fromGen: a[2], staging: a[3], work: a[4], target: a[5], targetGen: a[6],
		manifests: a[7], rule: a[8],
		claims:    map[string]*claim{},
		conflicts: map[string]*conflict{},
		pauseAt:   os.Getenv("OVERLAY_FLEET_FOLD_PAUSE_AT"),
		times:     os.Getenv("OVERLAY_FLEET_FOLD_TIMES") == "1",
		lastPhase: time.Now(),
	}
	switch f.rule {
	case ruleLowestIndex, ruleNewest:
	default:
		usage()
	}
	if a[9] != "-" {
		for _, p := range strings.Split(a[9], ",") {
			if p != "" {
				f.private = append(f.private, p)
			}
		}
	}
	for i := 10; i < len(a); i += 3 {
		f.insts = append(f.insts, &instance{index: len(f.insts), name: a[i], ns: a[i+1], upper: a[i+2],
			won: map[string]int{}})
	}
	// The fold/gc lock (fd 9, taken by fold.sh) stays with this process, not with its children.
	syscall.CloseOnExec(9)

	cleanupFn = f.cleanup
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		out.Flush()
		runCleanup()
		code := map[os.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143, syscall.SIGHUP: 129}[s]
		os.Exit(code)
	}()

	f.run()
	out.Flush()
}

// pause is the test hook OVERLAY_FLEET_FOLD_PAUSE_AT=<step>: sleeps (a child process) at a step.
func (f *folder) pause(step string) {
	if f.pauseAt != step {
		return
	}
	out.Flush()
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		return
	}
	fmt.Fprintf(os.Stderr, "overlay-fleet: fold paused at %s\n", step)
	_ = cmd.Wait()
}

// enc is one path as a manifest field: R<path> verbatim, or E<path> with \\ \n \t escapes.
func enc(s string) string {
	if !strings.ContainsAny(s, "\\\n\t") {
		return "R" + s
	}
	r := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\t", "\\t")
	return "E" + r.Replace(s)
}

// shown is a path as the report prints it (escaped like enc, without the marker).
func shown(s string) string { return enc(s)[1:] }

func ts9(t syscall.Timespec) string {
	return strconv.FormatInt(int64(t.Sec), 10) + fmt.Sprintf(".%09d", t.Nsec)
}
