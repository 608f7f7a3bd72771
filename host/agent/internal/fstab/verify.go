package fstab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// WrittenLine is a line that an edit wrote: a verifier checks these and no others.
type WrittenLine struct {
	// LineNo is the number of the line in the file given to the verifier, from 1.
	LineNo int
	// FstabLineNo is its number in the new fstab, which findings name; 0 when it is LineNo
	// (the file verified is the new fstab).
	FstabLineNo int
	// MountPoint is the line's fs_file, decoded.
	MountPoint string
}

// fstabLineNo is the number of the line in the new fstab.
func (w WrittenLine) fstabLineNo() int {
	if w.FstabLineNo != 0 {
		return w.FstabLineNo
	}
	return w.LineNo
}

// Verifier checks the lines an edit wrote before the new content replaces the fstab. The
// Editor gives it a temp file that holds those lines alone, so a check costs the same however
// long the fstab is: foreign lines are not ours to judge, and what findmnt reports for an entry
// does not depend on the other entries (but for the order of mount points, which systemd does
// not need: see Findmnt.Verify).
type Verifier interface {
	Verify(ctx context.Context, file string, written []WrittenLine) error
}

// RunFunc runs a command and returns its standard output and standard error. err is an
// *exec.ExitError when the command ran and exited with a non-zero status.
type RunFunc func(ctx context.Context, name string, args ...string) (stdout, stderr []byte, err error)

// Findmnt verifies with util-linux's `findmnt --verify --tab-file <file>`.
type Findmnt struct {
	// Path is the findmnt binary.
	Path string
	// Run runs it; nil runs the real command.
	Run RunFunc
}

// FindmntOnPath is the Findmnt verifier of the findmnt on PATH, or nil when there is none: the
// check is optional.
func FindmntOnPath() Verifier {
	p, err := exec.LookPath("findmnt")
	if err != nil {
		return nil
	}
	return &Findmnt{Path: p}
}

// runCommand is the RunFunc of real commands.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

// findmnt reports a line it cannot parse on stderr: "findmnt: <file>: parse error at line N -- ignored".
// Compiled on first use.
var parseErrorLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`parse error at line ([0-9]+)`) })

// Verify runs findmnt on file. findmnt reports per entry a header line (the decoded mount point)
// and indented findings, `[E]` for errors and `[W]` for warnings. The check fails for a parse
// error on a written line and for an error reported for a written line's mount point, except
// those that are normal for a line written before its mount point exists: "unreachable on boot
// required target: No such file or directory", and "wrong order" (systemd orders mounts by
// their paths and x-systemd.requires-mounts-for, not by their order in the file; it is the one
// finding that compares an entry with the others, with "target specified more than once", a
// warning). A parse error is reported with the line's number in the new fstab. A findmnt too
// old for --verify (util-linux < 2.29) checks nothing.
func (f *Findmnt) Verify(ctx context.Context, file string, written []WrittenLine) error {
	run := f.Run
	if run == nil {
		run = runCommand
	}
	stdout, stderr, err := run(ctx, f.Path, "--verify", "--tab-file", file)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return fmt.Errorf("cannot run %s --verify: %w", f.Path, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s --verify: %w", f.Path, ctx.Err())
	}
	if err != nil && len(stdout) == 0 && bytes.Contains(stderr, []byte("--help")) {
		return nil // no --verify in this findmnt
	}
	ours := map[string]bool{}
	lineNos := map[int]int{} // in file: in the new fstab
	for _, w := range written {
		ours[w.MountPoint] = true
		lineNos[w.LineNo] = w.fstabLineNo()
	}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	for sc.Scan() {
		if m := parseErrorLine().FindStringSubmatch(sc.Text()); m != nil {
			if n, _ := strconv.Atoi(m[1]); lineNos[n] != 0 {
				problems = append(problems, "parse error at line "+strconv.Itoa(lineNos[n]))
			}
		}
	}
	inOurs := false
	sc = bufio.NewScanner(bytes.NewReader(stdout))
	for sc.Scan() {
		r := sc.Text()
		if r == "" {
			continue
		}
		if r[0] != ' ' && r[0] != '\t' {
			inOurs = ours[r]
			continue
		}
		finding := strings.TrimSpace(r)
		if inOurs && strings.HasPrefix(finding, "[E]") && !harmless(finding) {
			problems = append(problems, finding)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("findmnt --verify reports for the written lines: %s", strings.Join(problems, "; "))
	}
	return nil
}

// harmless says whether an error finding of findmnt is normal for a line we write.
func harmless(finding string) bool {
	return strings.Contains(finding, "wrong order") ||
		strings.Contains(finding, "target") && (strings.Contains(finding, "No such file or directory") || strings.Contains(finding, "does not exist"))
}
