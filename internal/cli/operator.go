package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"
)

// operatorGroup is `cairn operator` with its raft and autopilot groups.
func operatorGroup(u *ui) *cobra.Command {
	return group("operator", "Provides cluster-level tools for Cairn operators",
		group("raft", "Provides cluster-level tools for Cairn operators",
			leaf(u, "list-peers", "Display the current Raft peer configuration", runOperatorRaftListPeers),
			leaf(u, "remove-peer", "Remove a Cairn server from the Raft configuration", runOperatorRaftRemovePeer),
			leaf(u, "transfer-leader", "Transfer Raft leadership to another server", runOperatorRaftTransferLeader),
		),
		group("autopilot", "Provides tools for modifying Autopilot configuration",
			leaf(u, "get-config", "Display the current Autopilot configuration", runOperatorAutopilotGet),
			leaf(u, "set-config", "Modify the current Autopilot configuration", runOperatorAutopilotSet),
			leaf(u, "state", "Display the current Autopilot state", runOperatorAutopilotState),
		),
	)
}

// operatorClient parses args (with the common HTTP flags plus those
// extra registers) and returns a client; no positional arguments allowed.
func operatorClient(u *ui, name string, args []string, extra func(fs *flag.FlagSet)) (*api.Client, *httpFlags, *flag.FlagSet, error) {
	var hf httpFlags
	fs := newFlagSet(u, name)
	hf.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(u, fs, args); err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, nil, fmt.Errorf("too many arguments (expected 0, got %d)", fs.NArg())
	}
	c, err := hf.client()
	if err != nil {
		return nil, nil, nil, err
	}
	return c, &hf, fs, nil
}

func runOperatorRaftListPeers(u *ui, args []string) error {
	c, hf, _, err := operatorClient(u, "operator raft list-peers", args, nil)
	if err != nil {
		return err
	}
	reply, err := c.Operator().RaftGetConfiguration(hf.queryOptions())
	if err != nil {
		return fmt.Errorf("getting peers: %w", err)
	}
	var leaderIndex uint64
	for _, s := range reply.Servers {
		if s.Leader {
			leaderIndex = s.LastIndex
		}
	}
	tw := tabwriter.NewWriter(u.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Node\tID\tAddress\tState\tVoter\tRaftProtocol\tCommit Index\tTrails Leader By")
	for _, s := range reply.Servers {
		state, trails := "follower", "-"
		if s.Leader {
			state = "leader"
		} else {
			var behind uint64
			if leaderIndex > s.LastIndex {
				behind = leaderIndex - s.LastIndex
			}
			trails = fmt.Sprintf("%d commits", behind)
		}
		protocol := s.ProtocolVersion
		if protocol == "" {
			protocol = "<=1"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%d\t%s\n",
			s.Node, s.ID, s.Address, state, s.Voter, protocol, s.LastIndex, trails)
	}
	return tw.Flush()
}

func runOperatorRaftRemovePeer(u *ui, args []string) error {
	var address, id string
	c, _, _, err := operatorClient(u, "operator raft remove-peer", args, func(fs *flag.FlagSet) {
		fs.StringVar(&address, "address", "", "The `IP:port` of the Raft peer to remove.")
		fs.StringVar(&id, "id", "", "The `ID` of the Raft peer to remove.")
	})
	if err != nil {
		return err
	}
	switch {
	case address == "" && id == "":
		return errors.New("an address or id is required for the peer to remove")
	case address != "" && id != "":
		return errors.New("cannot give both an address and an id for the peer to remove")
	}
	if id != "" {
		if err := c.Operator().RaftRemovePeerByID(id, nil); err != nil {
			return fmt.Errorf("removing peer: %w", err)
		}
		u.Printf("Removed peer with id %q\n", id)
		return nil
	}
	if err := c.Operator().RaftRemovePeerByAddress(address, nil); err != nil {
		return fmt.Errorf("removing peer: %w", err)
	}
	u.Printf("Removed peer with address %q\n", address)
	return nil
}

func runOperatorRaftTransferLeader(u *ui, args []string) error {
	var id string
	c, _, _, err := operatorClient(u, "operator raft transfer-leader", args, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "The `ID` of the server to hand leadership to (default: any up-to-date voter).")
	})
	if err != nil {
		return err
	}
	res, err := c.Operator().RaftLeaderTransfer(id, nil)
	if err != nil {
		return fmt.Errorf("transferring leadership: %w", err)
	}
	if !res.Success {
		return errors.New("leadership transfer did not succeed")
	}
	u.Printf("Success\n")
	return nil
}

func runOperatorAutopilotGet(u *ui, args []string) error {
	c, hf, _, err := operatorClient(u, "operator autopilot get-config", args, nil)
	if err != nil {
		return err
	}
	conf, err := c.Operator().AutopilotGetConfiguration(hf.queryOptions())
	if err != nil {
		return fmt.Errorf("querying Autopilot configuration: %w", err)
	}
	u.Printf("CleanupDeadServers = %t\n", conf.CleanupDeadServers)
	u.Printf("LastContactThreshold = %s\n", conf.LastContactThreshold.Duration())
	u.Printf("MaxTrailingLogs = %d\n", conf.MaxTrailingLogs)
	u.Printf("MinQuorum = %d\n", conf.MinQuorum)
	u.Printf("ServerStabilizationTime = %s\n", conf.ServerStabilizationTime.Duration())
	u.Printf("RedundancyZoneTag = %q\n", conf.RedundancyZoneTag)
	u.Printf("DisableUpgradeMigration = %t\n", conf.DisableUpgradeMigration)
	u.Printf("UpgradeVersionTag = %q\n", conf.UpgradeVersionTag)
	return nil
}

// autopilotSetAttempts bounds the read-modify-CAS loop of set-config.
const autopilotSetAttempts = 5

func runOperatorAutopilotSet(u *ui, args []string) error {
	var (
		cleanup                   bool
		lastContact, stabilize    time.Duration
		maxTrailing, minQuorum    uint64
		redundancyTag, upgradeTag string
		disableUpgrade            bool
	)
	c, _, fs, err := operatorClient(u, "operator autopilot set-config", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&cleanup, "cleanup-dead-servers", false, "Remove dead servers when a new server joins or periodically.")
		fs.DurationVar(&lastContact, "last-contact-threshold", 0, "How long a server may go without leader contact and stay healthy.")
		fs.Uint64Var(&maxTrailing, "max-trailing-logs", 0, "How many log entries a server may trail the leader and stay healthy.")
		fs.Uint64Var(&minQuorum, "min-quorum", 0, "Voters below which dead servers are not removed.")
		fs.DurationVar(&stabilize, "server-stabilization-time", 0, "How long a new server must be healthy before it becomes a voter.")
		fs.StringVar(&redundancyTag, "redundancy-zone-tag", "", "Stored for compatibility; Cairn does not act on it.")
		fs.BoolVar(&disableUpgrade, "disable-upgrade-migration", false, "Stored for compatibility; Cairn does not act on it.")
		fs.StringVar(&upgradeTag, "upgrade-version-tag", "", "Stored for compatibility; Cairn does not act on it.")
	})
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"last-contact-threshold", lastContact}, {"server-stabilization-time", stabilize}} {
		if set[d.name] && d.v < 0 {
			return fmt.Errorf("-%s must not be negative, got %s", d.name, d.v)
		}
	}
	if minQuorum > uint64(^uint(0)) {
		return fmt.Errorf("-min-quorum %d is too large", minQuorum)
	}

	op := c.Operator()
	for range autopilotSetAttempts {
		conf, err := op.AutopilotGetConfiguration(nil)
		if err != nil {
			return fmt.Errorf("querying Autopilot configuration: %w", err)
		}
		if set["cleanup-dead-servers"] {
			conf.CleanupDeadServers = cleanup
		}
		if set["last-contact-threshold"] {
			conf.LastContactThreshold = api.NewReadableDuration(lastContact)
		}
		if set["max-trailing-logs"] {
			conf.MaxTrailingLogs = maxTrailing
		}
		if set["min-quorum"] {
			conf.MinQuorum = uint(minQuorum)
		}
		if set["server-stabilization-time"] {
			conf.ServerStabilizationTime = api.NewReadableDuration(stabilize)
		}
		if set["redundancy-zone-tag"] {
			conf.RedundancyZoneTag = redundancyTag
		}
		if set["disable-upgrade-migration"] {
			conf.DisableUpgradeMigration = disableUpgrade
		}
		if set["upgrade-version-tag"] {
			conf.UpgradeVersionTag = upgradeTag
		}
		ok, err := op.AutopilotCASConfiguration(conf, nil)
		if err != nil {
			return fmt.Errorf("setting Autopilot configuration: %w", err)
		}
		if ok {
			u.Printf("Configuration updated!\n")
			return nil
		}
	}
	return errors.New("configuration could not be atomically updated, please try again")
}

func runOperatorAutopilotState(u *ui, args []string) error {
	var format string
	c, hf, _, err := operatorClient(u, "operator autopilot state", args, func(fs *flag.FlagSet) {
		fs.StringVar(&format, "format", "pretty", "Output `format`: pretty or json.")
	})
	if err != nil {
		return err
	}
	if format != "pretty" && format != "json" {
		return fmt.Errorf("unknown -format %q (want pretty or json)", format)
	}
	st, err := c.Operator().AutopilotState(hf.queryOptions())
	if err != nil {
		return fmt.Errorf("querying Autopilot state: %w", err)
	}
	if format == "json" {
		b, err := json.MarshalIndent(st, "", "    ")
		if err != nil {
			return fmt.Errorf("encoding Autopilot state: %w", err)
		}
		u.Printf("%s\n", b)
		return nil
	}
	printAutopilotState(u, st)
	return nil
}

func printAutopilotState(u *ui, st *api.AutopilotState) {
	tw := tabwriter.NewWriter(u.out, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Healthy:\t%t\n", st.Healthy)
	fmt.Fprintf(tw, "Failure Tolerance:\t%d\n", st.FailureTolerance)
	fmt.Fprintf(tw, "Optimistic Failure Tolerance:\t%d\n", st.OptimisticFailureTolerance)
	fmt.Fprintf(tw, "Leader:\t%s\n", st.Leader)
	_ = tw.Flush()
	u.Printf("Voters:\n")
	for _, v := range st.Voters {
		u.Printf("   %s\n", v)
	}
	ids := make([]string, 0, len(st.Servers))
	for id := range st.Servers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	u.Printf("Servers:\n")
	for _, id := range ids {
		s := st.Servers[id]
		u.Printf("   %s\n", id)
		tw := tabwriter.NewWriter(u.out, 0, 4, 1, ' ', 0)
		rows := [][2]string{
			{"Name", s.Name}, {"Address", s.Address}, {"Version", s.Version},
			{"Status", string(s.Status)}, {"Node Type", string(s.NodeType)}, {"Node Status", s.NodeStatus},
			{"Healthy", fmt.Sprint(s.Healthy)}, {"Last Contact", s.LastContact.Duration().String()},
			{"Last Term", fmt.Sprint(s.LastTerm)}, {"Last Index", fmt.Sprint(s.LastIndex)},
		}
		for _, r := range rows {
			fmt.Fprintf(tw, "      %s:\t%s\n", r[0], r[1])
		}
		_ = tw.Flush()
	}
}
