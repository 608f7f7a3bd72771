package box

import (
	"bytes"
	"fmt"
	"path"
	"strings"
)

// RemoteError is a command that ran on the box and failed.
type RemoteError struct {
	Addr string   // host:port of the box
	Argv []string // the command
	// ExitStatus is the remote exit status, -1 when the command ended without one.
	ExitStatus int
	Signal     string // the signal that ended the command, if any
	// Stderr is the last non-empty line the command wrote on stderr: the agent's protocol
	// puts its one-line reason there.
	Stderr string
}

func (e *RemoteError) Error() string {
	var how string
	switch {
	case e.Signal != "":
		how = "killed by signal " + e.Signal
	case e.ExitStatus < 0:
		how = "ended without an exit status"
	default:
		how = fmt.Sprintf("exit status %d", e.ExitStatus)
	}
	msg := e.Stderr
	if msg == "" {
		msg = "(nothing on stderr)"
	}
	return fmt.Sprintf("%s: %s: %s: %s", e.Addr, commandName(e.Argv), how, msg)
}

// commandName shortens argv for messages: the program's base name and up to two more words
// (the agent's subcommand and operation), never the data.
func commandName(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	words := []string{path.Base(argv[0])}
	for _, a := range argv[1:min(len(argv), 3)] {
		if strings.HasPrefix(a, "-") || strings.ContainsAny(a, " /=") {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

func lastLine(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return strings.TrimSpace(string(lines[len(lines)-1]))
}
