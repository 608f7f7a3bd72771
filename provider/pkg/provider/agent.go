package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// errBadAnswer marks an agent that exited 0 with an answer that does not make sense: the
// operation may have been done on the box.
var errBadAnswer = errors.New("unexpected answer from the box agent")

// callAgent runs `<agentPath> <subcommand> <op>` on the box with req as JSON on stdin and
// decodes the JSON object the agent writes on stdout into resp.
func callAgent(ctx context.Context, b Box, subcommand, op string, req, resp any) error {
	what := subcommand + " " + op
	in, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", what, err)
	}
	out, err := b.Runner.Run(ctx, []string{b.AgentPath, subcommand, op}, in)
	if err != nil {
		return err // names the box, the command and the agent's reason
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), resp); err != nil {
		return fmt.Errorf("%s on %s: %w: %q is not the JSON object expected: %v",
			what, b.Runner.Addr(), errBadAnswer, abbreviate(out), err)
	}
	return nil
}

func abbreviate(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
