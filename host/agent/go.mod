module overlay-fleet/host/agent

go 1.25
